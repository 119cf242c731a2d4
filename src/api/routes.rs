//! THE table of what this server does over REST: resource types, their interactions, their
//! search parameters, and the system operations. The router is built from it and the
//! CapabilityStatement is derived from it, so the two cannot drift.

/// A RESTful interaction on a resource type (`http://hl7.org/fhir/restful-interaction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interaction {
    Read,
    Vread,
    HistoryInstance,
    SearchType,
    Create,
    Update,
    Delete,
}

impl Interaction {
    pub fn code(self) -> &'static str {
        match self {
            Interaction::Read => "read",
            Interaction::Vread => "vread",
            Interaction::HistoryInstance => "history-instance",
            Interaction::SearchType => "search-type",
            Interaction::Create => "create",
            Interaction::Update => "update",
            Interaction::Delete => "delete",
        }
    }

    /// The axum path of this interaction for `resource_type`.
    pub fn path(self, resource_type: &str) -> String {
        match self {
            Interaction::Read | Interaction::Update | Interaction::Delete => {
                format!("/fhir/{resource_type}/{{id}}")
            }
            Interaction::Vread => format!("/fhir/{resource_type}/{{id}}/_history/{{vid}}"),
            Interaction::HistoryInstance => format!("/fhir/{resource_type}/{{id}}/_history"),
            Interaction::SearchType | Interaction::Create => format!("/fhir/{resource_type}"),
        }
    }
}

/// A search parameter a resource type supports.
#[derive(Debug, Clone, Copy)]
pub struct SearchParam {
    pub name: &'static str,
    /// `http://hl7.org/fhir/search-param-type` code.
    pub type_code: &'static str,
    pub documentation: &'static str,
    /// A value the store's search parser accepts (used by the drift test).
    pub example: &'static str,
}

/// Where a resource type's interactions are answered from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backing {
    /// Submitted resources: the pipeline and the store's versioned resources.
    Submissions,
    /// Subscriptions: their own table and handshake (`api::subscriptions`).
    Subscriptions,
    /// The SubscriptionTopic definitions, built in (`deliver::subscription::Topic`).
    Topics,
}

/// A resource type served over REST.
#[derive(Debug, Clone, Copy)]
pub struct ResourceDef {
    pub resource_type: &'static str,
    pub interactions: &'static [Interaction],
    /// `If-None-Exist` honoured on create (by `identifier=system|value`).
    pub conditional_create: bool,
    pub search_params: &'static [SearchParam],
    pub backing: Backing,
    /// Operations on instances of this type.
    pub operations: &'static [OperationDef],
}

const ALL: &[Interaction] = &[
    Interaction::Read,
    Interaction::Vread,
    Interaction::HistoryInstance,
    Interaction::SearchType,
    Interaction::Create,
];

const COMMON: [SearchParam; 3] = [
    SearchParam {
        name: "identifier",
        type_code: "token",
        documentation: "Business identifier: code, system|code, |code or system|",
        example: "https://trust.example/ids|R-1",
    },
    SearchParam {
        name: "status",
        type_code: "token",
        documentation: "Status code; comma for OR",
        example: "complete",
    },
    SearchParam {
        name: "_lastUpdated",
        type_code: "date",
        documentation: "When the current version was stored; prefixes eq ne gt lt ge le sa eb",
        example: "ge2020-01-01",
    },
];

pub const RESOURCES: &[ResourceDef] = &[
    ResourceDef {
        resource_type: "MeasureReport",
        interactions: ALL,
        conditional_create: true,
        backing: Backing::Submissions,
        operations: &[],
        search_params: &[
            COMMON[0],
            COMMON[1],
            COMMON[2],
            SearchParam {
                name: "reporter",
                type_code: "reference",
                documentation: "Reporting organisation: ODS code, system|code, or Organization/id",
                example: "RX1",
            },
            SearchParam {
                name: "period",
                type_code: "date",
                documentation: "MeasureReport.period, compared as ranges; prefixes eq ne gt lt ge le sa eb",
                example: "2026-10",
            },
            SearchParam {
                name: "measure",
                type_code: "reference",
                documentation: "Canonical of the Measure; url matches every version, url|version one",
                example: "https://fhir.pqom-gateway.org/Measure/pqom-annex1",
            },
        ],
    },
    ResourceDef {
        resource_type: "Measure",
        interactions: ALL,
        conditional_create: true,
        backing: Backing::Submissions,
        operations: &[],
        search_params: &[
            COMMON[0],
            COMMON[1],
            COMMON[2],
            SearchParam {
                name: "url",
                type_code: "uri",
                documentation: "Canonical URL, exact",
                example: "https://fhir.pqom-gateway.org/Measure/pqom-annex1",
            },
            SearchParam {
                name: "version",
                type_code: "token",
                documentation: "Business version, exact",
                example: "1.0.0",
            },
            SearchParam {
                name: "name",
                type_code: "string",
                documentation: "Computable name, case-insensitive starts-with; name:exact for exact",
                example: "PQOM",
            },
        ],
    },
    ResourceDef {
        resource_type: "Subscription",
        interactions: &[
            Interaction::Read,
            Interaction::SearchType,
            Interaction::Create,
            Interaction::Update,
            Interaction::Delete,
        ],
        conditional_create: false,
        backing: Backing::Subscriptions,
        operations: &[SUBSCRIPTION_STATUS],
        search_params: &[
            SearchParam {
                name: "status",
                type_code: "token",
                documentation: "requested | active | error | off; comma for OR",
                example: "active",
            },
            SearchParam {
                name: "url",
                type_code: "uri",
                documentation: "The channel endpoint, exact",
                example: "https://icb.example/fhir/notify",
            },
            SearchParam {
                name: "topic",
                type_code: "uri",
                documentation: "The SubscriptionTopic canonical (Subscription.criteria), exact",
                example: "https://fhir.pqom-gateway.org/SubscriptionTopic/pqom-validated-submission",
            },
        ],
    },
    ResourceDef {
        resource_type: "Basic",
        interactions: &[Interaction::Read, Interaction::SearchType],
        conditional_create: false,
        backing: Backing::Topics,
        operations: &[],
        search_params: &[SearchParam {
            name: "code",
            type_code: "token",
            documentation: "SubscriptionTopic: the topic definitions (Basic is served for these only)",
            example: "SubscriptionTopic",
        }],
    },
];

/// Result parameters every search accepts besides the resource's own.
pub const RESULT_PARAMS: &[&str] = &["_count", "_sort", "_cursor", "_format", "_pretty"];

/// A system-level operation.
#[derive(Debug, Clone, Copy)]
pub struct OperationDef {
    pub name: &'static str,
    pub path: &'static str,
    pub definition: &'static str,
}

pub const PROCESS_MESSAGE: OperationDef = OperationDef {
    name: "process-message",
    path: "/fhir/$process-message",
    definition: "http://hl7.org/fhir/OperationDefinition/MessageHeader-process-message",
};

pub const OPERATIONS: &[OperationDef] = &[PROCESS_MESSAGE];

/// `$status` on a Subscription (GET or POST): the query-status notification Bundle.
pub const SUBSCRIPTION_STATUS: OperationDef = OperationDef {
    name: "status",
    path: "/fhir/Subscription/{id}/$status",
    definition: "http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/backport-subscription-status",
};

/// `GET /fhir/Bundle/$regional?region=Y61&period=2026-10`: the signed consolidated regional
/// bundle (pooled region and ICB reports and the trusts' latest, `deliver::regional`).
pub const REGIONAL_BUNDLE: OperationDef = OperationDef {
    name: "regional",
    path: "/fhir/Bundle/$regional",
    definition: "https://fhir.pqom-gateway.org/OperationDefinition/regional-bundle",
};

/// `GET /fhir/$events?destination=NAME&since=N`: the pull feed of a static destination of kind
/// `pull` (`api::delivery`).
pub const EVENTS_FEED: OperationDef = OperationDef {
    name: "events",
    path: "/fhir/$events",
    definition: "https://fhir.pqom-gateway.org/OperationDefinition/events-feed",
};

/// `GET /fhir/Subscription/{id}/$events`: the query-event Bundle of a Subscription's events.
pub const SUBSCRIPTION_EVENTS: OperationDef = OperationDef {
    name: "events",
    path: "/fhir/Subscription/{id}/$events",
    definition: "http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/backport-subscription-events",
};

/// Operations answered on GET: they read, they change nothing.
/// (`SUBSCRIPTION_EVENTS` is an instance operation: not listed at system level.)
pub const READ_OPERATIONS: &[OperationDef] = &[REGIONAL_BUNDLE, EVENTS_FEED];

/// Plain JSON (not FHIR) endpoints for charts: `GET /api/indicators/{code}/series?org=QMM`.
pub const SERIES_PATH: &str = "/api/indicators/{code}/series";

pub fn resource(resource_type: &str) -> Option<&'static ResourceDef> {
    RESOURCES.iter().find(|r| r.resource_type == resource_type)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::search::SearchQuery;

    /// The store's parser and this table agree: every advertised parameter is accepted, and a
    /// parameter of the other resource type is refused.
    #[test]
    fn every_advertised_search_parameter_is_understood_by_the_store() {
        for r in RESOURCES
            .iter()
            .filter(|r| r.backing == Backing::Submissions)
        {
            for p in r.search_params {
                let params = vec![(p.name.to_owned(), p.example.to_owned())];
                assert!(
                    SearchQuery::parse(r.resource_type, &params).is_ok(),
                    "{}?{}={}",
                    r.resource_type,
                    p.name,
                    p.example
                );
            }
        }
        let params = vec![("period".to_owned(), "2026".to_owned())];
        assert!(SearchQuery::parse("Measure", &params).is_err());
        for r in RESOURCES
            .iter()
            .filter(|r| r.backing == Backing::Subscriptions)
        {
            for p in r.search_params {
                let params = vec![(p.name.to_owned(), p.example.to_owned())];
                assert!(
                    crate::api::subscriptions::SubscriptionSearch::parse(&params).is_ok(),
                    "Subscription?{}={}",
                    p.name,
                    p.example
                );
            }
        }
    }
}
