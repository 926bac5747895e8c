mod claim_agreement;
mod ledger_moto;
