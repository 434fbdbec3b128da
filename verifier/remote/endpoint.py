"""A suspect reachable only as a service: a KServe v2 (Open Inference Protocol) REST endpoint.

Vendors often expose a model only behind an inference endpoint.  The ``response`` method needs nothing but
the suspect's outputs on the owner's probes, so such a suspect can still be verified, on behaviour alone
(no weights: at most ``similar``, never ``derived``).  :func:`connect` reads the model's metadata and
returns an :class:`EndpointModel`, which satisfies :class:`~verifier.graph.suspect.Suspect` with
``original = None``: verification then gathers behaviour evidence only, as for any black box.

The client uses the standard library alone (``urllib``), so no dependency is added, and it treats the
service as untrusted and costly:

- **budget**: every inference request is counted (:class:`Usage`) and refused beyond ``max_queries``
  (:class:`~verifier.errors.QueryBudgetError`); :meth:`EndpointModel.expect` refuses before the first
  probe when the fingerprint needs more than the budget allows, so no query is wasted;
- **retries**: connection errors, timeouts and HTTP 5xx are retried :data:`RETRIES` times with
  exponential backoff (each attempt counts as a query: the service saw it); other HTTP errors are not;
- **timeout** per request; answers are capped at :data:`MAX_BODY` bytes; redirects are not followed
  (they would carry the headers, often a token, to another host);
- **validation**: the answer must be JSON of the protocol's form, of the shape the input implies, with
  finite values (:mod:`verifier.remote.kserve`); anything else is one :class:`~verifier.errors.EndpointError`.

The image convention (layout, value range) comes from the metadata's shapes or the caller (``--layout``,
``--range``); the scale and output channels from the output shape when the metadata fixes it, else from
one probe query.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import string
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from verifier.errors import EndpointError, InputError, QueryBudgetError
from verifier.graph.io_spec import (
    LAYOUTS,
    MAX_CHANNELS,
    MAX_PIXELS,
    ImageIO,
    Layout,
    integer_scale,
    layout_axes,
    layout_from_dims,
)
from verifier.graph.suspect import restore_on_canvas
from verifier.remote import kserve
from verifier.remote.kserve import TensorSpec, clean

#: What `verify --endpoint` and `[[endpoints]]` allow by default: many times what a default fingerprint needs
#: (two probes per critical image, plus one query that measures the scale).
DEFAULT_MAX_QUERIES = 100
#: Seconds one request may take (a probe is one small image).
DEFAULT_TIMEOUT = 30.0
#: Extra attempts after a connection error, timeout or HTTP 5xx, waiting BACKOFF, 2 x BACKOFF, ... seconds.
RETRIES = 2
BACKOFF = 0.5
#: Largest answer read (a 128x128 RGB image is about 1 MB of JSON).
MAX_BODY = 256 * 2**20
#: Why an endpoint's verdict has no weight evidence (said by verify and audit).
NO_WEIGHTS = "an inference endpoint shows only its outputs, so the verdict rests on behaviour (at most similar)"
#: Shown as the format of endpoint rows in audits.
FORMAT = "kserve-v2"
#: Size of the image that measures the scale when the metadata does not fix the output.
PROBE_SIZE = 32
_MODEL_PATH = re.compile(r"^(?P<prefix>.*?)/v2/models/(?P<model>[^/]+)(?:/versions/(?P<version>[^/]+))?/?$")
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_RETRY_AFTER = (ConnectionError, TimeoutError, http.client.HTTPException)


@dataclass(frozen=True)
class EndpointSpec:
    """Where an endpoint is and how to question it: the CLI's options, or one ``[[endpoints]]`` entry.

    Build it with :meth:`parse`, which checks everything before any request is sent.  `url` is then the
    model's own URL (``.../v2/models/NAME[/versions/V]``, any query string kept).
    """

    url: str
    model: str
    name: str  # shown in audit tables
    headers: tuple[tuple[str, str], ...] = ()
    max_queries: int = DEFAULT_MAX_QUERIES
    timeout: float = DEFAULT_TIMEOUT
    layout: Layout | None = None
    value_range: tuple[float, float] | None = None

    @classmethod
    def parse(cls, url: str, model: str | None = None, *, name: str | None = None,
              headers: Sequence[tuple[str, str]] = (), max_queries: int = DEFAULT_MAX_QUERIES,
              timeout: float = DEFAULT_TIMEOUT, layout: Layout | None = None,
              value_range: tuple[float, float] | None = None) -> EndpointSpec:
        """Check and normalise: an http(s) URL without credentials (they belong in a header), the model named by
        the URL (``/v2/models/NAME``) or by `model` (then the URL is the server's base), header names that are
        HTTP tokens and values without line breaks, a positive budget and timeout."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InputError(f"endpoint URL must be http:// or https:// with a host, got {clean(url, 80)!r}")
        if parts.username is not None or parts.password is not None:
            raise InputError("endpoint URL carries credentials: give them as a header instead "
                             "(--header 'Authorization: Bearer ...')")
        if parts.fragment:
            raise InputError("endpoint URL must not have a #fragment")
        try:
            parts.port  # noqa: B018  # urlsplit checks the port only when asked
        except ValueError:
            raise InputError(f"endpoint URL has an invalid port: {clean(url, 80)!r}") from None
        found = _MODEL_PATH.match(parts.path)
        if found:
            named = urllib.parse.unquote(found["model"])
            if model is not None and model != named:
                raise InputError(f"the URL names model {named!r} but --model says {model!r}")
            model, path = named, parts.path.rstrip("/")
        elif model:
            path = f"{parts.path.rstrip('/')}/v2/models/{urllib.parse.quote(model, safe='')}"
        else:
            raise InputError("name the model: --model NAME, or a URL ending in /v2/models/NAME")
        if isinstance(max_queries, bool) or not isinstance(max_queries, int) or max_queries < 1:
            raise InputError(f"the query budget must be a positive integer, got {max_queries!r}")
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= 3600:
            raise InputError(f"the timeout must be a number of seconds in (0, 3600], got {timeout!r}")
        if layout is not None and layout not in LAYOUTS:
            raise InputError(f"layout must be NCHW or NHWC, got {layout!r}")
        checked = tuple(_header(key, value) for key, value in headers)
        url = urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))
        return cls(url=url, model=model, name=name or model, headers=checked, max_queries=max_queries,
                   timeout=float(timeout), layout=layout, value_range=value_range)

    @property
    def server(self) -> str:
        """The server's base URL (where ``/v2/health/ready`` lives)."""
        parts = urllib.parse.urlsplit(self.url)
        prefix = _MODEL_PATH.match(parts.path)
        return urllib.parse.urlunsplit((parts.scheme, parts.netloc, prefix["prefix"] if prefix else "", "", ""))

    def to_dict(self) -> dict:
        """JSON-ready form, without header values (they are often secrets)."""
        return {"url": self.url, "model": self.model, "name": self.name,
                "headers": [key for key, _ in self.headers], "max_queries": self.max_queries,
                "timeout": self.timeout}


def _header(key: str, value: str) -> tuple[str, str]:
    if not isinstance(key, str) or not _TOKEN.match(key):
        raise InputError(f"header name {clean(str(key), 40)!r} is not a valid HTTP header name")
    if not isinstance(value, str) or any(c in value for c in "\r\n\0"):
        raise InputError(f"header {key} must be one line of text")
    return key, value.strip()


def parse_header(text: str) -> tuple[str, str]:
    """'Name: value' (as --header takes it) -> (name, value)."""
    key, colon, value = text.partition(":")
    if not colon:
        raise InputError(f"--header must be 'Name: value', got {clean(text.split(' ')[0], 40)!r}...")
    return _header(key.strip(), value)


def expand_environment(value: str, where: str) -> str:
    """`value` with ``${NAME}`` replaced by the environment variable, so verifier.toml need not hold tokens."""
    try:
        return string.Template(value).substitute(os.environ)
    except KeyError as exc:
        raise InputError(f"{where} uses ${{{exc.args[0]}}}, which is not set in the environment") from None
    except ValueError:
        raise InputError(f"{where} has a '$' that is not ${{NAME}} (write $$ for a literal $)") from None


@dataclass
class Usage:
    """What verifying cost the service: inference queries sent (retries and the scale probe included; the
    budget counts these), how many of them were retries, and every HTTP request (metadata included)."""

    max_queries: int
    queries: int = 0
    retries: int = 0
    requests: int = 0

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {"queries": self.queries, "max_queries": self.max_queries, "retries": self.retries,
                "requests": self.requests}

    def describe(self) -> str:
        """'9 queries (budget 100, 0 retries)'."""
        return (f"{self.queries} quer{'y' if self.queries == 1 else 'ies'} (budget {self.max_queries}, "
                f"{self.retries} retr{'y' if self.retries == 1 else 'ies'})")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects surface as HTTP errors: following one would send the headers (a token) to another host."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


@dataclass
class Connection:
    """HTTP to one endpoint, with the budget, retries and timeout of its spec, and the count of what was sent."""

    spec: EndpointSpec
    usage: Usage = field(init=False)

    def __post_init__(self) -> None:
        self.usage = Usage(self.spec.max_queries)
        self._opener = urllib.request.build_opener(_NoRedirect())

    def ready(self) -> None:
        """The server says it is ready: ``GET /v2/health/ready`` answers 200 (its body, often empty, means nothing)."""
        self._send(f"{self.spec.server}/v2/health/ready", None, charged=False)

    def get(self, url: str, what: str) -> object:
        """GET `url` as JSON (not charged to the budget)."""
        answer = self._send(url, None, charged=False)
        with self.blame():
            return kserve.parse_json(answer, what)

    def infer(self, body: bytes) -> object:
        """POST one inference request; the response document."""
        answer = self._send(self._model_url("/infer"), body, charged=True)
        with self.blame():
            return kserve.parse_json(answer, "the inference response")

    @contextlib.contextmanager
    def blame(self) -> Iterator[None]:
        """Name the endpoint in what :mod:`verifier.remote.kserve` finds wrong with its answers."""
        try:
            yield
        except EndpointError as exc:
            raise EndpointError(f"endpoint {self.spec.url}: {exc}") from None

    def _model_url(self, suffix: str) -> str:
        parts = urllib.parse.urlsplit(self.spec.url)
        return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path + suffix, parts.query, ""))

    def _send(self, url: str, body: bytes | None, charged: bool) -> bytes:
        headers = {"Accept": "application/json", **dict(self.spec.headers)}
        if body is not None:
            headers["Content-Type"] = "application/json"
        where = f"endpoint {self.spec.url}"
        for attempt in range(RETRIES + 1):
            if charged:
                if self.usage.queries >= self.usage.max_queries:
                    raise QueryBudgetError(f"{where}: query budget of {self.usage.max_queries} spent "
                                           f"(raise --max-queries)")
                self.usage.queries += 1
                self.usage.retries += int(attempt > 0)
            self.usage.requests += 1
            request = urllib.request.Request(url, data=body, headers=headers, method="GET" if body is None else "POST")
            try:
                with self._opener.open(request, timeout=self.spec.timeout) as response:
                    return _read(response, where)
            except urllib.error.HTTPError as exc:
                problem = _http_problem(exc)
                if exc.code < 500:
                    raise EndpointError(f"{where}: {problem}") from None
            except urllib.error.URLError as exc:
                if not isinstance(exc.reason, _RETRY_AFTER):
                    raise EndpointError(f"{where}: cannot connect ({_reason(exc.reason, self.spec.timeout)})") from None
                problem = _reason(exc.reason, self.spec.timeout)
            except _RETRY_AFTER as exc:
                problem = _reason(exc, self.spec.timeout)
            except (OSError, ValueError) as exc:  # TLS failures mid-answer, a URL urllib cannot use
                raise EndpointError(f"{where}: {_reason(exc, self.spec.timeout)}") from None
            if attempt < RETRIES:
                time.sleep(BACKOFF * 2**attempt)
        raise EndpointError(f"{where}: {problem} (tried {RETRIES + 1} times)")


def _read(response, where: str) -> bytes:
    body = response.read(MAX_BODY + 1)
    if len(body) > MAX_BODY:
        raise EndpointError(f"{where}: answer larger than {MAX_BODY // 2**20} MiB")
    return body


def _reason(reason: object, timeout: float) -> str:
    if isinstance(reason, TimeoutError):
        return f"no answer within the timeout ({timeout:g} s)"
    return clean(str(reason) or type(reason).__name__, 120)


def _http_problem(exc: urllib.error.HTTPError) -> str:
    """'HTTP 404: model not found', with the server's own message when it sent one (KServe: {"error": ...})."""
    try:
        body = exc.read(4096)
    except (OSError, http.client.HTTPException):
        body = b""
    finally:
        exc.close()
    try:
        document = kserve.parse_json(body, "error")
        message = document.get("error") or document.get("detail") if isinstance(document, dict) else None
    except EndpointError:
        message = None
    text = f"HTTP {exc.code}" + (f": {clean(str(message), 150)}" if message else f" {clean(str(exc.reason), 60)}")
    if 300 <= exc.code < 400:
        text += (f" to {clean(exc.headers.get('Location', '?'), 100)} (redirects are not followed, so headers "
                 "never reach another host: give the final URL)")
    elif exc.code in (401, 403):
        text += " (give credentials with --header, e.g. 'Authorization: Bearer TOKEN')"
    return text


# -- the suspect -----------------------------------------------------------------------------------

class EndpointModel:
    """A suspect known by its outputs only (:class:`~verifier.graph.suspect.Suspect`; no graph, so no weights).

    :meth:`run` sends each image of a batch as one inference request, in the endpoint's own convention
    (layout, value range), and checks that what comes back is an image of the size the input implies.
    """

    original = None  # an endpoint shows no weights: verification gathers behaviour evidence alone

    def __init__(self, connection: Connection, io: ImageIO, tensor: TensorSpec, output: str | None) -> None:
        self.connection = connection
        self.io = io
        self.tensor = tensor
        self.output = output  # asked for by name when the metadata names it

    @property
    def spec(self) -> EndpointSpec:
        """Where the endpoint is."""
        return self.connection.spec

    @property
    def usage(self) -> Usage:
        """The queries sent so far."""
        return self.connection.usage

    def expect(self, queries: int) -> None:
        """Refuse now, before any of them is sent, if `queries` more would exceed the budget."""
        left = self.usage.max_queries - self.usage.queries
        if queries > left:
            raise QueryBudgetError(f"endpoint {self.spec.url}: verifying needs {queries} more queries but the "
                                   f"budget allows {left} of {self.usage.max_queries} (raise --max-queries)")

    def run(self, x: np.ndarray) -> np.ndarray:
        """f(x) for an NCHW float32 batch in [0, 1], one query per image."""
        x = np.asarray(x, np.float32)
        self.io.check_batch(x)
        return np.concatenate([self._query(image[None]) for image in x])

    def restore(self, x: np.ndarray) -> np.ndarray:
        """f(x) for probes of any size up to a fixed-size endpoint's canvas."""
        return restore_on_canvas(self.run, self.io, x)

    def _query(self, image: np.ndarray) -> np.ndarray:
        height, width = image.shape[2:]
        expected = (1, self.io.out_channels, height * self.io.scale, width * self.io.scale)
        y = _to_nchw(self.io, self._raw(image))
        if y.shape != expected:
            raise EndpointError(f"endpoint {self.spec.url} answered shape {list(_to_layout(self.io.layout, y.shape))} "
                                f"for a {list(_to_layout(self.io.layout, image.shape))} input; expected "
                                f"{list(_to_layout(self.io.layout, expected))}")
        return y

    def _raw(self, image: np.ndarray) -> np.ndarray:
        """The endpoint's answer to one NCHW image in [0, 1], as it sent it (its layout, its range)."""
        lo, hi = self.io.value_range
        sent = image.astype(np.float64) * (hi - lo) + lo
        if self.io.layout == "NHWC":
            sent = sent.transpose(0, 2, 3, 1)
        document = self.connection.infer(kserve.infer_request(self.tensor, sent, self.output))
        with self.connection.blame():
            answer = kserve.output_array(document, self.output)
        if answer.ndim != 4:
            raise EndpointError(f"endpoint {self.spec.url} answered a {answer.ndim}-D tensor; expected a 4-D image")
        return answer


def _to_layout(layout: Layout, nchw: tuple[int, ...]) -> tuple[int, ...]:
    return nchw if layout == "NCHW" else (nchw[0], nchw[2], nchw[3], nchw[1])


def _to_nchw(io: ImageIO, answer: np.ndarray) -> np.ndarray:
    lo, hi = io.value_range
    y = answer.transpose(0, 3, 1, 2) if io.layout == "NHWC" else answer
    return ((y - lo) / (hi - lo)).astype(np.float32)


def connect(spec: EndpointSpec, progress: Callable[[str], None] | None = None,
            connection: Connection | None = None) -> EndpointModel:
    """Check the server is ready, read the model's metadata and describe its image I/O (one probe query when
    the metadata leaves the output size free).  Pass a `connection` to keep its count when this fails."""
    connection = connection or Connection(spec)
    connection.ready()
    document = connection.get(spec.url, "the model metadata")
    with connection.blame():
        metadata = kserve.parse_metadata(document)
    tensor, output = _image_tensors(metadata, spec)
    dims = list(tensor.shape or ())
    layout, source = spec.layout, "override"
    if layout is None:
        found = layout_from_dims(dims)
        layout, source = (found, "metadata shape") if found else ("NCHW", "default")
    c_axis, h_axis, w_axis = layout_axes(layout)
    channels, height, width = dims[c_axis], dims[h_axis], dims[w_axis]
    if channels is None or not 1 <= channels <= MAX_CHANNELS:
        raise EndpointError(f"endpoint input {tensor.describe()} does not fix a channel count from 1 to "
                            f"{MAX_CHANNELS} at the {layout} channel position" + ("" if spec.layout else
                                                                                  " (--layout sets the layout)"))
    if dims[0] not in (None, 1):
        raise EndpointError(f"endpoint input {tensor.describe()} fixes the batch at {dims[0]}; verifier sends one "
                            "image per query")
    if (height or 1) * (width or 1) > MAX_PIXELS:
        raise EndpointError(f"endpoint input is fixed at {height}x{width} pixels; verifier handles at most "
                            f"{MAX_PIXELS} pixels (4096x4096)")
    io = ImageIO(input_name=tensor.name, output_name=output.name if output else "", layout=layout, channels=channels,
                 out_channels=0, scale=0, value_range=spec.value_range or (0.0, 1.0), height=height, width=width,
                 layout_source=source)
    model = EndpointModel(connection, io, tensor, output.name if output else None)
    out_channels, scale = _declared_scale(io, output) or _measured_scale(model)
    model.io = ImageIO(**{**io.to_dict(), "out_channels": out_channels, "scale": scale})
    if progress:
        progress(f"endpoint {spec.url}: {layout} (from {source}), {channels} channel(s), x{scale}, range "
                 f"{io.value_range[0]:g},{io.value_range[1]:g}")
    return model


def _image_tensors(metadata: kserve.ModelMetadata, spec: EndpointSpec) -> tuple[TensorSpec, TensorSpec | None]:
    """The one 4-D floating-point input and the one output (None: the metadata lists none)."""
    images = [t for t in metadata.inputs if t.shape is not None and len(t.shape) == 4]
    if len(metadata.inputs) != 1 or len(images) != 1:
        listed = ", ".join(t.describe() for t in metadata.inputs) or "none"
        raise EndpointError(f"endpoint {spec.url}: expected exactly one 4-D image input in the model metadata, "
                            f"found {len(metadata.inputs)}: {listed}")
    if images[0].datatype not in kserve.FLOAT_TYPES:
        raise EndpointError(f"endpoint input {images[0].describe()} is not floating-point "
                            f"({', '.join(kserve.FLOAT_TYPES)})")
    if len(metadata.outputs) > 1:
        raise EndpointError(f"endpoint {spec.url} has {len(metadata.outputs)} outputs; verifier compares exactly one "
                            "image output")
    return images[0], metadata.outputs[0] if metadata.outputs else None


def _declared_scale(io: ImageIO, output: TensorSpec | None) -> tuple[int, int] | None:
    """(output channels, scale) when the metadata fixes both input and output sizes, else None."""
    if output is None or output.shape is None or len(output.shape) != 4 or io.height is None or io.width is None:
        return None
    c_axis, h_axis, w_axis = layout_axes(io.layout)
    channels, height, width = output.shape[c_axis], output.shape[h_axis], output.shape[w_axis]
    if channels is None or height is None or width is None:
        return None
    return _checked_scale(channels, height / io.height, width / io.width, f"declares output {output.describe()}, so it")


def _measured_scale(model: EndpointModel) -> tuple[int, int]:
    """(output channels, scale) from one query on a mid-grey probe (the canvas of a fixed-size endpoint)."""
    height, width = model.io.height or PROBE_SIZE, model.io.width or PROBE_SIZE
    answer = _to_nchw(model.io, model._raw(np.full((1, model.io.channels, height, width), 0.5, np.float32)))
    shapes = (f"answered shape {list(_to_layout(model.io.layout, answer.shape))} for a "
              f"{list(_to_layout(model.io.layout, (1, model.io.channels, height, width)))} input, so it")
    return _checked_scale(answer.shape[1], answer.shape[2] / height, answer.shape[3] / width, shapes)


def _checked_scale(channels: int, scale_h: float, scale_w: float, how: str) -> tuple[int, int]:
    scale = integer_scale(scale_h, scale_w)
    if scale is None:
        raise EndpointError(f"endpoint {how} has an output/input size ratio {scale_h:g}x{scale_w:g}, not one "
                            "integer scale factor")
    if not 1 <= channels <= MAX_CHANNELS:
        raise EndpointError(f"endpoint {how} has {channels} output channels; verifier handles 1 to {MAX_CHANNELS}")
    return int(channels), scale


def headers_from(table: Mapping[str, object], where: str) -> tuple[tuple[str, str], ...]:
    """A TOML table of headers, ``${NAME}`` expanded from the environment, checked."""
    pairs = []
    for key, value in table.items():
        if not isinstance(value, str):
            raise InputError(f"{where}: header {clean(str(key), 40)} must be a string")
        pairs.append(_header(key, expand_environment(value, f"{where}: header {key}")))
    return tuple(pairs)
