"""Differential privacy for hosted processes: DP-FedAvg with adaptive clipping, and its accountant.

- dp_fedavg.py: the noised, fixed-denominator mean of clipped updates (McMahan et al. 2018);
- adaptive_clipping.py: the clip follows a quantile of the update norms (Andrew et al. 2021);
- accountant.py: ε for δ over the completed cycles (RDP of the sampled Gaussian mechanism,
  Google's `dp-accounting` library).
"""
