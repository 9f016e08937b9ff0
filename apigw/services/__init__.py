"""The two demo backend services (users, orders): app factory, SQLite storage, validation.

They share apigw.shared and apigw.config with the gateway and import nothing of the gateway.
"""
