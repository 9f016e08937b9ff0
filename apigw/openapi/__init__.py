"""OpenAPI documents: the Swagger UI every app serves (`swagger`), and the gateway's fetching
(`fetch`) and merging (`merge`) of its backends' documents into one page."""
