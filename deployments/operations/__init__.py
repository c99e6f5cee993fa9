"""Operations (issue 18): every asynchronous request (``op_…``) with its steps, followed to its end."""
