mod ledger_moto;
