"""The public names of api.md are importable from `cogsync`, and `__all__` is sorted."""

import cogsync

API_NAMES = {
    "Config", "Client", "AsyncClient", "Dataset", "AsyncDataset", "DatasetMetadata", "Record",
    "Conflict", "Resolution", "SyncResult", "last_writer_wins", "remote_wins", "local_wins",
    "CogsyncError", "InvalidNameError", "InvalidValueError", "LimitExceededError",
    "ConflictError", "NotAuthorizedError", "OfflineError", "ServerError",
}  # fmt: skip


def test_api_names_exported() -> None:
    missing = API_NAMES - set(cogsync.__all__)
    assert not missing
    for name in cogsync.__all__:
        assert hasattr(cogsync, name), name


def test_all_sorted() -> None:
    assert list(cogsync.__all__) == sorted(cogsync.__all__)


def test_every_error_derives_from_root() -> None:
    for name in cogsync.__all__:
        obj = getattr(cogsync, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, cogsync.CogsyncError), name


def test_limit_error_subclasses() -> None:
    for sub in (
        cogsync.DatasetLimitExceededError,
        cogsync.RecordLimitExceededError,
        cogsync.DatasetSizeLimitExceededError,
    ):
        assert issubclass(sub, cogsync.LimitExceededError)
