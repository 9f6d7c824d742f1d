"""The MLflow pyfunc wrapper: a registered lmtune model loads with `mlflow.pyfunc.load_model("models:/NAME/VERSION")`
and serves with `mlflow models serve`. Input: a DataFrame with the task's input columns (`text` for classification;
`question` and `context` for qa; `text` and `text_pair` for a model trained on sentence pairs, ...); the logged
signature names them. Output: one row per input with the
prediction fields (label and score, entities, answer, generated text, ...)."""
from __future__ import annotations

from typing import Any

import mlflow.pyfunc
import pandas as pd
from mlflow.pyfunc import PythonModelContext


class LmtuneModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context: PythonModelContext) -> None:
        from lmtune.inference import Predictor

        self.predictor = Predictor(context.artifacts["model_dir"])

    def predict(self, context: PythonModelContext, model_input: pd.DataFrame,
                params: dict[str, Any] | None = None) -> pd.DataFrame:
        """`model_input`: the signature's columns (MLflow turns a served request into this DataFrame). The hint is
        pd.DataFrame, one MLflow validates nothing against and infers no schema from: the logged signature is
        the schema (lmtune.tracking.log_model). A list of texts, passed by hand, is read as the first field."""
        if isinstance(model_input, pd.DataFrame):
            records = model_input.to_dict(orient="records")
        else:
            records = [{self.predictor.input_fields[0]: str(t)} for t in model_input]
        rows = self.predictor.predict(records)
        inputs = set(self.predictor.input_fields)
        return pd.DataFrame([{k: v for k, v in row.items() if k not in inputs and k != "scores"} for row in rows])

def pip_requirements() -> list[str]:
    """Pinned to what trained the model, so a served model runs the same code paths."""
    import sklearn
    import torch
    import transformers

    return [f"torch=={torch.__version__.split('+')[0]}", f"transformers=={transformers.__version__}",
            f"scikit-learn=={sklearn.__version__}", f"pandas=={pd.__version__}", f"mlflow=={mlflow.__version__}"]
