mod hostile_events;
mod lambda_e2e;
mod observability;
mod properties;
mod redaction;
