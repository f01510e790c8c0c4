"""Adapters from models teams already have to the plug-in interface (``backend/plugin.py``):
``sklearn.py`` for any scikit-learn estimator or pipeline with ``predict_proba``, and
``labelstudio_ml.py`` for a class written as a Label Studio ML backend."""
