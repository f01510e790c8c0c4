"""Learning from annotations: the dataset policy, candidates, calibration and the publish gate."""
