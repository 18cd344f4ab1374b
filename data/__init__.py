from data.datasets import DatasetInfo, build_test_loader, build_train_valid_loaders, dataset_info, load_image
from data.tabular import load_table

__all__ = ["DatasetInfo", "build_test_loader", "build_train_valid_loaders", "dataset_info", "load_image", "load_table"]
