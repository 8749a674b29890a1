"""KServe V2 / Open Inference Protocol over gRPC (`inference.GRPCInferenceService`), with grpc.aio.

The messages come from the descriptor set generated from `proto/grpc_predict_v2.proto` and are
loaded into a private descriptor pool, not the process-wide default one: MLServer's and
tritonclient's generated stubs register the same `inference.*` names there, and two registrations
in one process fail. A private pool coexists with either.

ModelMesh routes by the `mm-vmodel-id` request metadata (the predictor's name); give `vmodel_id`.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from functools import cache
from importlib import resources
from types import TracebackType
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message

from policyengine.loadtest.reply import CONNECTION, TIMEOUT, Reply

SERVICE = "inference.GRPCInferenceService"
DESCRIPTOR_SET = "grpc_predict_v2.desc"

# V2 datatype -> field of InferTensorContents that carries it.
CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


@cache
def _pool() -> descriptor_pool.DescriptorPool:
    data = resources.files("policyengine.loadtest").joinpath("proto", DESCRIPTOR_SET).read_bytes()
    pool = descriptor_pool.DescriptorPool()
    for file in descriptor_pb2.FileDescriptorSet.FromString(data).file:
        pool.Add(file)
    return pool


def message_class(name: str) -> type[Message]:
    """A message class of the protocol, e.g. message_class("ModelInferRequest")."""
    descriptor = _pool().FindMessageTypeByName(f"inference.{name}")
    cls: type[Message] = message_factory.GetMessageClass(descriptor)
    return cls


def _flatten(data: Any) -> list[Any]:
    if isinstance(data, list | tuple):
        flat: list[Any] = []
        for item in data:
            flat.extend(_flatten(item))
        return flat
    return [data]


def infer_request(request: Mapping[str, Any], model: str, version: str | None = None) -> Message:
    """A ModelInferRequest from the V2 JSON form ({"inputs": [{name, datatype, shape, data}]})."""
    message = message_class("ModelInferRequest")()
    message.model_name = model  # type: ignore[attr-defined]
    if version:
        message.model_version = version  # type: ignore[attr-defined]
    if request.get("id"):
        message.id = str(request["id"])  # type: ignore[attr-defined]
    for item in request.get("inputs") or []:
        datatype = str(item.get("datatype", "")).upper()
        field = CONTENTS_FIELD.get(datatype)
        if field is None:
            raise ValueError(
                f"input {item.get('name')!r}: datatype {datatype or '(none)'} has no typed "
                f"contents field in gRPC (give one of {', '.join(sorted(CONTENTS_FIELD))})"
            )
        tensor = message.inputs.add()  # type: ignore[attr-defined]
        tensor.name = str(item["name"])
        tensor.datatype = datatype
        tensor.shape.extend(int(d) for d in item.get("shape") or [])
        values = _flatten(item.get("data", []))
        if datatype == "BYTES":
            values = [v.encode() if isinstance(v, str) else bytes(v) for v in values]
        getattr(tensor.contents, field).extend(values)
    for output in request.get("outputs") or []:
        message.outputs.add().name = str(output["name"])  # type: ignore[attr-defined]
    return message


# V2 datatype -> struct format of one element in raw_output_contents (little-endian).
_RAW_FORMAT = {
    "BOOL": "?",
    "INT8": "b",
    "INT16": "h",
    "INT32": "i",
    "INT64": "q",
    "UINT8": "B",
    "UINT16": "H",
    "UINT32": "I",
    "UINT64": "Q",
    "FP32": "f",
    "FP64": "d",
}


def response_as_json(message: Message) -> dict[str, Any]:
    """A ModelInferResponse in the REST form ({"outputs": [{name, datatype, shape, data}]}).

    Servers answer in typed `contents` or, for speed, in `raw_output_contents` (one byte string
    per output, little-endian); both read the same way here.
    """
    raw = list(message.raw_output_contents)  # type: ignore[attr-defined]
    outputs = []
    for index, tensor in enumerate(message.outputs):  # type: ignore[attr-defined]
        datatype = str(tensor.datatype).upper()
        if index < len(raw) and datatype in _RAW_FORMAT:
            size = struct.calcsize(_RAW_FORMAT[datatype])
            count = len(raw[index]) // size
            data: list[Any] = list(struct.unpack(f"<{count}{_RAW_FORMAT[datatype]}", raw[index]))
        else:
            field = CONTENTS_FIELD.get(datatype)
            data = list(getattr(tensor.contents, field)) if field else []
            if datatype == "BYTES":
                data = [v.decode("utf-8", "replace") for v in data]
        outputs.append(
            {
                "name": tensor.name,
                "datatype": datatype,
                "shape": [int(d) for d in tensor.shape],
                "data": data,
            }
        )
    return {"model_name": message.model_name, "outputs": outputs}  # type: ignore[attr-defined]


class V2GrpcClient:
    """Use as `async with V2GrpcClient("host:port", model) as client: await client.infer(msg)`."""

    def __init__(
        self,
        target: str,
        model: str,
        *,
        version: str | None = None,
        vmodel_id: str | None = None,
        metadata: Sequence[tuple[str, str]] = (),
        timeout: float = 10.0,
        keep_body: bool = False,
    ) -> None:
        self.target = target.removeprefix("grpc://")
        self.model = model
        self.version = version
        self._metadata = tuple(metadata) + ((("mm-vmodel-id", vmodel_id),) if vmodel_id else ())
        self._timeout = timeout
        self._keep_body = keep_body
        self._channel: grpc.aio.Channel | None = None
        self._infer: Any = None
        self._metadata_call: Any = None
        self._ready_call: Any = None

    async def __aenter__(self) -> V2GrpcClient:
        self._channel = grpc.aio.insecure_channel(self.target)
        self._infer = self._method("ModelInfer", "ModelInferRequest", "ModelInferResponse")
        self._metadata_call = self._method(
            "ModelMetadata", "ModelMetadataRequest", "ModelMetadataResponse"
        )
        self._ready_call = self._method("ModelReady", "ModelReadyRequest", "ModelReadyResponse")
        return self

    def _method(self, rpc: str, request: str, response: str) -> Any:
        assert self._channel is not None
        return self._channel.unary_unary(
            f"/{SERVICE}/{rpc}",
            request_serializer=message_class(request).SerializeToString,
            response_deserializer=message_class(response).FromString,
        )

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    def request(self, body: Mapping[str, Any]) -> Message:
        """The protobuf request for a V2 JSON body (build once, send many times)."""
        return infer_request(body, self.model, self.version)

    async def metadata(self) -> dict[str, Any]:
        """The model's metadata in the REST form (name, inputs, outputs)."""
        ask = message_class("ModelMetadataRequest")(name=self.model, version=self.version or "")
        try:
            answer = await self._metadata_call(
                ask, metadata=self._metadata or None, timeout=self._timeout
            )
        except grpc.aio.AioRpcError as error:
            raise LookupError(
                f"ModelMetadata {self.model}: {error.code().name}: {error.details()}"
            ) from error

        def tensors(items: Any) -> list[dict[str, Any]]:
            return [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in items]

        return {
            "name": answer.name,
            "versions": list(answer.versions),
            "platform": answer.platform,
            "inputs": tensors(answer.inputs),
            "outputs": tensors(answer.outputs),
        }

    async def ready(self) -> bool:
        ask = message_class("ModelReadyRequest")(name=self.model, version=self.version or "")
        try:
            answer = await self._ready_call(
                ask, metadata=self._metadata or None, timeout=self._timeout
            )
        except grpc.aio.AioRpcError:
            return False
        return bool(answer.ready)

    async def infer(self, request: Message | Mapping[str, Any]) -> Reply:
        """One ModelInfer; `request` a ModelInferRequest or the V2 JSON form."""
        if not isinstance(request, Message):
            request = self.request(request)
        try:
            answer = await self._infer(
                request, metadata=self._metadata or None, timeout=self._timeout
            )
        except grpc.aio.AioRpcError as error:
            code = error.code()
            if code is grpc.StatusCode.DEADLINE_EXCEEDED:
                return Reply(TIMEOUT, False, error=error.details())
            if code is grpc.StatusCode.UNAVAILABLE:
                return Reply(CONNECTION, False, error=error.details())
            return Reply(code.name, False, error=error.details())
        return Reply("OK", True, answer if self._keep_body else None)
