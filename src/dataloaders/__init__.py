"""One module per experiment; each exposes get(data_dir, seed, fixed_order, pc_valid) -> (data, taskcla, inputsize)."""
