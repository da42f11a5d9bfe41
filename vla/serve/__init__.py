"""Remote inference: serve a Policy over websockets (msgpack + numpy, never pickle) and use it remotely.

`wire` encodes messages, `protocol` defines requests and replies, `spec` describes what a policy expects,
`server` serves one policy to many clients, `client` is the synchronous client behind
`policies.remote.RemotePolicy`.
"""
