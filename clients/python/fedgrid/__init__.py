"""Fedgrid Python SDK: train hosted plans on devices, host and watch models on a Node.

Device side::

    client = fedgrid.Client("http://localhost:5000")
    job = client.new_job("digits_mlp")
    assignment = job.request()            # raises fedgrid.Rejected(timeout=...) when no place
    result = assignment.train((features, labels))
    assignment.report(result)

Researcher side::

    admin = fedgrid.Admin("http://localhost:5000", admin_token="...")
    admin.host_training("digits_mlp", name="digits", version="1.0",
                        client_config={"batch_size": 10, "epochs": 5},
                        server_config={"max_diffs": 5, "num_cycles": 40})
    weights = admin.retrieve_model("digits")
"""

from fedgrid_plans.executor import TrainingResult

from .admin import Admin
from .errors import (
    AdminAuthError,
    AssignmentExpired,
    AuthenticationError,
    FedgridError,
    NetworkUnreachable,
    ProcessUnknown,
    Rejected,
    ReportRefused,
    RequestInvalid,
    TrainingFinished,
    TrainingStopped,
    Unavailable,
    WorkerUnknown,
)
from .jobs import Assignment, Client, EvaluationResult, Job

__version__ = "0.1.0"

__all__ = [
    "Admin",
    "AdminAuthError",
    "Assignment",
    "AssignmentExpired",
    "AuthenticationError",
    "Client",
    "EvaluationResult",
    "FedgridError",
    "Job",
    "NetworkUnreachable",
    "ProcessUnknown",
    "Rejected",
    "ReportRefused",
    "RequestInvalid",
    "TrainingFinished",
    "TrainingStopped",
    "TrainingResult",
    "Unavailable",
    "WorkerUnknown",
    "__version__",
]
