"""Results against ground truth: truth masks, sampling, metrics, ROC, plots and tables."""
