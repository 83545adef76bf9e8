"""The TFLite metadata of a model, read once and TF-free: the one reader every stage uses.

Read with tflite-support's generated schema module (``metadata_schema_py_generated``),
not with ``MetadataDisplayer``: the displayer's module imports TensorFlow (for
``tf.io.gfile``), which would make every lint and the emulated app pay a multi-second
TensorFlow import. The generated module only needs ``flatbuffers``; associated files come
from the zip appended to the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from liteship.tflite_inspect import TFLITE_METADATA_NAME, ModelInfo, inspect_model, metadata_buffers
from liteship.types import DEFAULT_NORMALIZATION, Normalization, OutputRole

LABELS_TYPE = "TENSOR_VALUE_LABELS"


@dataclass(frozen=True)
class LabelFile:
    name: str
    type: str
    lines: int | None  # None = not packed in the model


@dataclass(frozen=True)
class ContentView:
    """A TensorMetadata's ``content.content_properties`` (what MediaPipe and the Task Library
    read: ImageProperties on the input, BoundingBoxProperties on the location output)."""

    type: str  # ContentProperties enum name: NONE, ImageProperties, BoundingBoxProperties, ...
    color_space: str | None = None  # ImageProperties
    box_type: str | None = None  # BoundingBoxProperties: BOUNDARIES, UPPER_LEFT, CENTER
    coordinate_type: str | None = None  # RATIO, PIXEL
    box_index: tuple[int, ...] | None = None  # None = no index vector


@dataclass(frozen=True)
class MetadataView:
    present: bool
    error: str = ""  # non-empty: present but unreadable
    output_names: tuple[str, ...] = ()
    #: (mean, std) lists of the first input's NormalizationOptions, None when absent
    normalization: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    #: output position -> label files attached to it
    output_files: dict[int, tuple[LabelFile, ...]] = field(default_factory=dict)
    packed_files: tuple[str, ...] = ()
    input_count: int = 0
    input_name: str = ""
    #: the input's content properties (None = no content)
    input_content: ContentView | None = None
    #: output position -> content properties (absent = no content)
    output_content: dict[int, ContentView] = field(default_factory=dict)
    #: SubGraphMetadata.custom_metadata names (MediaPipe's DETECTOR_METADATA)
    custom_metadata: tuple[str, ...] = ()
    #: lines of the first TENSOR_VALUE_LABELS file on the category output (desktop labels);
    #: for the 2-output form, of the first TENSOR_AXIS_LABELS file on the ``score`` output
    category_labels: tuple[str, ...] = ()
    #: custom metadata name -> its data (the DETECTOR_METADATA flatbuffer)
    custom_data: dict[str, bytes] = field(default_factory=dict)
    #: ModelMetadata.description (a letterboxed model's resize instructions are in it)
    description: str = ""

    @property
    def readable(self) -> bool:
        return self.present and not self.error

    def input_normalization(self) -> Normalization:
        """What an app applies to the input: the metadata's NormalizationOptions, else the default."""
        if self.readable and self.normalization and self.normalization[0] and self.normalization[1]:
            return Normalization(*self.normalization)
        return DEFAULT_NORMALIZATION

    def packed_lines(self, name: str) -> int | None:
        """Line count of an associated file packed in the model (None = not packed)."""
        return next((lf.lines for files in self.output_files.values() for lf in files if lf.name == name), None)


def read_metadata_view(model: bytes, info: ModelInfo | None = None) -> MetadataView:
    """The model's TFLITE_METADATA, as a view; never raises on bad metadata (``error`` says why).

    ``info`` is the model's :func:`inspect_model` result when the caller has it already.
    """
    info = info if info is not None else inspect_model(model)
    if not info.has_tflite_metadata:
        return MetadataView(present=False)
    try:
        return _metadata_view(model, info)
    except Exception as exc:  # noqa: BLE001 — any reader failure = unreadable metadata
        return MetadataView(present=True, error=f"{type(exc).__name__}: {str(exc)[:200]}")


def _metadata_view(model: bytes, info: ModelInfo) -> MetadataView:
    import io
    import zipfile

    from tensorflow_lite_support.metadata import metadata_schema_py_generated as mdfb

    raw = metadata_buffers(model)[TFLITE_METADATA_NAME]
    if len(raw) < 8 or not mdfb.ModelMetadata.ModelMetadataBufferHasIdentifier(raw, 0):
        raise ValueError("the TFLITE_METADATA buffer has no 'M001' identifier")
    meta = mdfb.ModelMetadata.GetRootAsModelMetadata(raw, 0)
    if meta.SubgraphMetadataLength() < 1:
        raise ValueError("no subgraph metadata")
    sub = meta.SubgraphMetadata(0)
    packed: dict[str, bytes] = {}
    if info.associated_files:
        with zipfile.ZipFile(io.BytesIO(model)) as archive:
            packed = {name: archive.read(name) for name in archive.namelist()}

    def names_of(enum_cls: Any) -> dict[int, str]:
        return {v: k for k, v in vars(enum_cls).items() if not k.startswith("_")}

    type_names = names_of(mdfb.AssociatedFileType)

    def text(value: bytes | None) -> str:
        return value.decode("utf-8", errors="replace") if value else ""

    def label_file(f: Any) -> LabelFile:
        name = text(f.Name())
        lines = len(packed[name].decode("utf-8", errors="replace").splitlines()) if name in packed else None
        return LabelFile(name, type_names.get(f.Type(), str(f.Type())), lines)

    def content(t: Any) -> ContentView | None:
        c = t.Content()
        if c is None:
            return None
        kind = c.ContentPropertiesType()
        view = ContentView(names_of(mdfb.ContentProperties).get(kind, str(kind)))
        table = c.ContentProperties()
        if table is None:
            return ContentView("NONE") if kind == mdfb.ContentProperties.NONE else view
        if kind == mdfb.ContentProperties.ImageProperties:
            props = mdfb.ImageProperties()
            props.Init(table.Bytes, table.Pos)
            return ContentView(view.type, color_space=names_of(mdfb.ColorSpaceType).get(props.ColorSpace()))
        if kind == mdfb.ContentProperties.BoundingBoxProperties:
            props = mdfb.BoundingBoxProperties()
            props.Init(table.Bytes, table.Pos)
            index = None if props.IndexIsNone() else tuple(int(v) for v in props.IndexAsNumpy())
            return ContentView(view.type, box_type=names_of(mdfb.BoundingBoxType).get(props.Type()),
                               coordinate_type=names_of(mdfb.CoordinateType).get(props.CoordinateType()), box_index=index)
        return view

    names, files, contents = [], {}, {}
    for i in range(sub.OutputTensorMetadataLength()):
        t = sub.OutputTensorMetadata(i)
        names.append(text(t.Name()))
        files[i] = tuple(label_file(t.AssociatedFiles(j)) for j in range(t.AssociatedFilesLength()))
        view = content(t)
        if view is not None:
            contents[i] = view
    norm, input_name, input_content = None, "", None
    if sub.InputTensorMetadataLength() > 0:
        t = sub.InputTensorMetadata(0)
        input_name, input_content = text(t.Name()), content(t)
        for k in range(t.ProcessUnitsLength()):
            unit = t.ProcessUnits(k)
            if unit.OptionsType() == mdfb.ProcessUnitOptions.NormalizationOptions:
                opts = mdfb.NormalizationOptions()
                table = unit.Options()
                opts.Init(table.Bytes, table.Pos)
                mean = () if opts.MeanIsNone() else tuple(float(v) for v in opts.MeanAsNumpy())
                std = () if opts.StdIsNone() else tuple(float(v) for v in opts.StdAsNumpy())
                norm = (mean, std)
                break  # MediaPipe and the Task Library use the first one
    category_labels: tuple[str, ...] = ()
    if OutputRole.CLASSES in info.output_roles:
        for lf in files.get(info.output_roles.index(OutputRole.CLASSES), ()):
            if lf.type == LABELS_TYPE and lf.name in packed:
                category_labels = tuple(packed[lf.name].decode("utf-8", errors="replace").splitlines())
                break
    elif "score" in names:  # the 2-output form: labels name the score tensor's columns
        for lf in files.get(names.index("score"), ()):
            if lf.type == "TENSOR_AXIS_LABELS" and lf.name in packed:
                category_labels = tuple(packed[lf.name].decode("utf-8", errors="replace").splitlines())
                break
    custom_data = {}
    for k in range(sub.CustomMetadataLength()):
        entry = sub.CustomMetadata(k)
        custom_data[text(entry.Name())] = b"" if entry.DataIsNone() else entry.DataAsNumpy().tobytes()
    return MetadataView(
        present=True,
        output_names=tuple(names),
        normalization=norm,
        output_files=files,
        packed_files=tuple(packed),
        input_count=sub.InputTensorMetadataLength(),
        input_name=input_name,
        input_content=input_content,
        output_content=contents,
        custom_metadata=tuple(text(sub.CustomMetadata(k).Name()) for k in range(sub.CustomMetadataLength())),
        category_labels=category_labels,
        custom_data=custom_data,
        description=text(meta.Description()),
    )


