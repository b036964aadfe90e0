"""The baselines and peers our app is measured against, each a uvicorn app factory.

- `bare`: a plain `FastAPI()` with one route returning our `/auth/me` answer: the framework's
  own limit, with nothing of ours in it. Runs in the main venv (same FastAPI either way).
- `fastapi_users_app`: fastapi-users' documented SQLAlchemy setup.
- `authx_app`: AuthX's documented `access_token_required` setup.

The last two import packages the app does not depend on: they run in the peers' own venv
(`bench.peers.environment`), never imported by the runner.
"""
