//! HTTP interface (axum). Owns routing, content negotiation and the single mapping from
//! every stage's error to an OperationOutcome and an HTTP status. Holds no business logic.
