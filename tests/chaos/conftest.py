from tests.integration.conftest import make_platform, open_data_dir  # noqa: F401 - fixtures
