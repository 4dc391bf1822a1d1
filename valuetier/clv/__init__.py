"""Customer lifetime value: the BG/NBD and Gamma-Gamma models and their monthly estimates."""
