mod gate_moto;
