"""RQ jobs: the retrain pipeline, its coalescing queue, and the worker that runs them."""
