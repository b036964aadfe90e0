"""Development keys created by several processes at once: every process gets the same key."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from backend.app.core.server_secrets import app_secret, signing_key
from backend.app.core.settings import Settings

PROCESSES = 6


def _read_keys_at_the_barrier(data_dir: str, barrier, results) -> None:
    settings = Settings(_env_file=None, data_dir=Path(data_dir))
    barrier.wait()
    key = signing_key(settings)
    results.put((key.private_numbers().private_value, app_secret(settings)))


class TestDevelopmentKeys:
    def test_processes_starting_on_an_empty_data_folder_agree_on_both_keys(self, tmp_path):
        context = multiprocessing.get_context("spawn")
        barrier, results = context.Barrier(PROCESSES), context.Queue()
        processes = [
            context.Process(
                target=_read_keys_at_the_barrier, args=(str(tmp_path), barrier, results)
            )
            for _ in range(PROCESSES)
        ]
        for process in processes:
            process.start()
        keys = [results.get(timeout=60) for _ in range(PROCESSES)]
        for process in processes:
            process.join(timeout=60)

        assert [process.exitcode for process in processes] == [0] * PROCESSES
        assert len(set(keys)) == 1
        assert sorted(path.name for path in tmp_path.iterdir()) == [
            "jwt_signing_key.pem",
            "secret_key",
        ]

    def test_the_key_files_are_private_to_their_owner(self, tmp_path):
        settings = Settings(_env_file=None, data_dir=tmp_path)

        signing_key(settings)
        app_secret(settings)

        assert {path.stat().st_mode & 0o777 for path in tmp_path.iterdir()} == {0o600}
