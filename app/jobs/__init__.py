"""Jobs: the queue in the database, worker processes, one attempt at a job, the supervisor."""
