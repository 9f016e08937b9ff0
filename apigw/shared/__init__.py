"""What the gateway and the services share: app keys, errors, headers, logs, CLI, reserved paths.

Nothing here imports another part of apigw.
"""
