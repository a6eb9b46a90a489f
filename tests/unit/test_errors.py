"""One error hierarchy: every not-found error is a NotFoundError the API answers with 404, under its new
name and its earlier one."""

from __future__ import annotations

import pytest

from switchyard import errors
from switchyard.agents.threads import ThreadNotFoundError
from switchyard.api.errors import from_switchyard_error
from switchyard.finetune import adapters, files, models
from switchyard.retrieval import store

NOT_FOUND = [errors.JobNotFoundError, ThreadNotFoundError, store.CollectionNotFoundError,
             adapters.AdapterNotFoundError, files.UploadedFileNotFoundError, models.ModelNotFoundError]


@pytest.mark.parametrize("cls", NOT_FOUND, ids=lambda c: c.__name__)
def test_not_found_errors_share_the_root_and_map_to_404(cls):
    assert issubclass(cls, errors.NotFoundError) and issubclass(cls, errors.SwitchyardError)
    assert from_switchyard_error(cls("x")) == (404, "not_found")


def test_earlier_names_are_the_same_classes_and_lookup_errors_stay_lookup_errors():
    assert store.CollectionNotFound is store.CollectionNotFoundError
    assert adapters.AdapterNotFound is adapters.AdapterNotFoundError
    assert files.FileNotFound is files.UploadedFileNotFoundError
    assert models.UnknownModelError is models.ModelNotFoundError
    for cls in (adapters.AdapterNotFound, files.FileNotFound, models.UnknownModelError):
        assert issubclass(cls, LookupError)  # callers that catch LookupError still do


def test_other_errors_keep_their_status():
    assert from_switchyard_error(errors.InvalidParamsError("t", [])) == (422, "invalid_params")
    assert from_switchyard_error(errors.UnknownTaskError("t")) == (404, "unknown_kind")
    assert from_switchyard_error(errors.SwitchyardError("boom")) == (500, "internal_error")
