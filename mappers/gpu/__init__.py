"""GPU threadblock-tiling mappers: kernel plans, device rates, the model and the tiling search."""
