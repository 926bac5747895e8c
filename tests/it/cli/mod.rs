mod ops_moto;
mod replay_moto;
