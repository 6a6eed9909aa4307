"""User restorer training resumes stage 1 only from a checkpoint fine-tuned from the same base restorer."""

import pytest

from durr.train.user_training import _check_resumable_base


def test_first_start_records_the_base_and_a_resume_from_it_is_allowed(tmp_path):
    stage1 = tmp_path / "restorer"
    _check_resumable_base(stage1, "abc", tmp_path / "base")
    assert (stage1 / "base_restorer.txt").read_text().strip() == "abc"
    (stage1 / "checkpoint.pt").write_bytes(b"x")
    _check_resumable_base(stage1, "abc", tmp_path / "base")


def test_a_checkpoint_of_another_or_unknown_base_is_refused(tmp_path):
    stage1 = tmp_path / "restorer"
    stage1.mkdir()
    (stage1 / "checkpoint.pt").write_bytes(b"x")
    with pytest.raises(ValueError, match="another base restorer"):
        _check_resumable_base(stage1, "abc", tmp_path / "base")   # no record: unknown origin
    (stage1 / "base_restorer.txt").write_text("old\n")
    with pytest.raises(ValueError, match="another base restorer"):
        _check_resumable_base(stage1, "abc", tmp_path / "base")
    assert (stage1 / "checkpoint.pt").exists()                     # nothing deleted
