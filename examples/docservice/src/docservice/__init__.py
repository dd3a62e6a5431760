"""docservice: gonogo's example system under test.

Three processes share one SQLite database and one storage directory:

- `docservice.api`: the HTTP API (users, tokens, documents), run by uvicorn;
- `docservice.worker`: claims processing jobs from the job table and processes documents;
- `docservice.enricher`: a stand-in for a third-party classification API the worker calls.
"""

__version__ = "0.1.0"
