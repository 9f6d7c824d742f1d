"""The MLflow pyfunc wrapper: a registered lmtune model loads with `mlflow.pyfunc.load_model("models:/NAME/VERSION")`
and serves with `mlflow models serve`. Input: a DataFrame with a `text` column (or a list of strings)."""
from __future__ import annotations

import mlflow.pyfunc
import pandas as pd


class LmtuneModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context):  # noqa: ANN001 - MLflow infers a schema from hints; it rejects ours
        from lmtune.inference import Predictor

        self.predictor = Predictor(context.artifacts["model_dir"])

    def predict(self, context, model_input, params=None):  # noqa: ANN001 - see load_context
        if isinstance(model_input, pd.DataFrame):
            column = "text" if "text" in model_input.columns else model_input.columns[0]
            texts = model_input[column].astype(str).tolist()
        else:
            texts = [str(t) for t in model_input]
        rows = self.predictor.predict(texts)
        return pd.DataFrame([{"label": r["label"], "score": r["score"]} for r in rows])


def pip_requirements() -> list[str]:
    """Pinned to what trained the model, so a served model runs the same code paths."""
    import sklearn
    import torch
    import transformers

    return [f"torch=={torch.__version__.split('+')[0]}", f"transformers=={transformers.__version__}",
            f"scikit-learn=={sklearn.__version__}", f"pandas=={pd.__version__}", f"mlflow=={mlflow.__version__}"]
