mod rollback_mocks;
mod rollback_moto;
