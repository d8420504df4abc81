"""Hardware as data: spatial accelerators and GPUs, one YAML preset per design."""
