"""Built-in access loggers; importing this registers them (their config
messages are in ``envoy_fast.config.accesslog_types``; the worker's sinks in
``envoy_fast.accesslog``)."""
from envoy_fast.config import accesslog_types as _types
from envoy_fast.extensions.registry import AccessLoggerRecord, register_access_logger

FILE = register_access_logger(AccessLoggerRecord("envoy.access_loggers.file", _types.FileAccessLog))
STDOUT = register_access_logger(AccessLoggerRecord("envoy.access_loggers.stdout", _types.StdoutAccessLog))
STDERR = register_access_logger(AccessLoggerRecord("envoy.access_loggers.stderr", _types.StderrAccessLog))
