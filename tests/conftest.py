from tests.helpers.remote_servers import gcs_server, s3_server, signed_url_server  # noqa: F401
from tests.helpers.server_fixture import make_nucleus_server, nucleus_server, nucleus_url  # noqa: F401
