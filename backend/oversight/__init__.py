"""What people look at to see whether the model can be trusted: the report (``hitl report``, a
file) and the live dashboard (``GET /dashboard``) render the same pages from the stores."""
