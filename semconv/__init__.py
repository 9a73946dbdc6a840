"""The vocabulary: OTel GenAI attribute names and llmloop's own. Imports nothing of ours."""
