"""The code of every logged MLflow model (``neurec.serving.log_service``): MLflow's "models
from code" runs this file when it loads the model, so the model is this module's
``RecommenderModel`` from the installed ``neurec``, not a pickled object (MLflow warns about
pickled ``python_model`` objects: unpickling may run arbitrary code)."""

from mlflow.models import set_model

from neurec.serving import RecommenderModel

set_model(RecommenderModel())
