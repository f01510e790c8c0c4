"""Where state lives: the model registry, the audit store, and Label Studio (the source of truth
for annotations), each behind one small client."""
