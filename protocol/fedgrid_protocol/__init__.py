"""Fedgrid's wire contract, defined once: what a device, a researcher or a Node may send and
what it gets back (event payloads with their bounds), the error codes with their HTTP status and
the exception each SDK raises, and the binary frame format.

The Node and the Network validate with it and generate their OpenAPI documents from it; the
Python SDK maps errors with it; the JavaScript SDK's error table and types are generated from its
JSON Schema (`python -m fedgrid_protocol.export`).
"""
