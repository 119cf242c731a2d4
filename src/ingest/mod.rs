//! What a submission is: a FHIR message Bundle (MessageHeader first, focus resolved inside the
//! bundle) or a single REST resource. Envelope checks on the bytes as received; keeps those bytes.
