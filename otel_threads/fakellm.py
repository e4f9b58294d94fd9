"""The fake OpenAI-compatible server moved to `otel_threads.testing.fakellm`; this
name keeps working (``from otel_threads.fakellm import FakeLLM``, and
``python -m otel_threads.fakellm``)."""

from otel_threads.testing.fakellm import RESPONSE_MODELS, FakeLLM, main

__all__ = ["RESPONSE_MODELS", "FakeLLM", "main"]

if __name__ == "__main__":
    main()
