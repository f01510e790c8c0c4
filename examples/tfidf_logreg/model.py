"""TF-IDF features and a logistic regression: a scikit-learn pipeline as a model plug-in.

HITL_MODEL=examples.tfidf_logreg.model:TfidfLogReg hitl run
"""

from __future__ import annotations

from typing import Any

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from backend.plugins.sklearn import SklearnPlugin


class TfidfLogReg(SklearnPlugin):
    """Word unigrams and bigrams, sublinear TF-IDF, L2-regularised logistic regression."""

    def make_estimator(self) -> Any:
        return make_pipeline(
            TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1),
            LogisticRegression(C=10.0, max_iter=1000),
        )
