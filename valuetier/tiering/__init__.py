"""The tiering model: training, the compiled tree scorer, metrics, the registry, the training cycle
with its promotion gate, scoring with drivers, and the challenger."""
