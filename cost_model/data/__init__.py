"""Public measured latency / accuracy data: loaders, spec strings, splits.

See ``docs/data.md`` for the sources, their licenses and caveats.
"""

from cost_model.data.public import (
    FLAGGED_DEVICES,
    DeviceTable,
    describe,
    list_devices,
    load_all,
    load_device,
    load_nb201_accuracy,
)
from cost_model.data.root import DATA_ROOT_ENV, DEFAULT_DATA_ROOT, resolve_data_root
from cost_model.data.safe_pickle import RestrictedUnpickler, load_pickle, loads_pickle
from cost_model.data.sources import DataSource, get_source, list_sources, register_source
from cost_model.data.specs import (
    NB201_OPS,
    nb201_cell_is_connected,
    nb201_spec,
    ofa_spec,
    parse_nb201_cell,
    parse_ofa_spec,
)
from cost_model.data.splits import arch_split, assign_arch_split, split_indices

__all__ = [
    "DATA_ROOT_ENV",
    "DEFAULT_DATA_ROOT",
    "FLAGGED_DEVICES",
    "DataSource",
    "DeviceTable",
    "describe",
    "get_source",
    "list_devices",
    "list_sources",
    "load_all",
    "load_device",
    "load_nb201_accuracy",
    "register_source",
    "resolve_data_root",
    "RestrictedUnpickler",
    "load_pickle",
    "loads_pickle",
    "NB201_OPS",
    "nb201_cell_is_connected",
    "nb201_spec",
    "ofa_spec",
    "parse_nb201_cell",
    "parse_ofa_spec",
    "arch_split",
    "assign_arch_split",
    "split_indices",
]
