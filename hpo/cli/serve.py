"""The long-running services beside a study: optuna-dashboard and the gRPC storage proxy."""

from __future__ import annotations

from hpo.errors import HpoError


def cmd_dashboard(args) -> int:
    from hpo.dashboard import serve
    from storage import default_artifact_dir, resolve_storage_url

    url = resolve_storage_url(args.storage)
    serve(url, args.host, args.port, args.artifact_dir or default_artifact_dir(url))
    return 0


def cmd_storage_proxy(args) -> int:
    from storage import resolve_storage_url
    from storage.rdb import Pool

    try:
        from storage.proxy_server import ProxySettings, serve_proxy
    except ImportError as e:
        raise HpoError(
            f"hpo storage-proxy needs grpcio: pip install 'hpo-text[proxy]' ({e})"
        ) from e
    if min(args.threads, args.pool_size, args.processes) < 1:
        raise HpoError(
            "hpo storage-proxy: --threads, --pool-size and --processes must be at least 1"
        )
    url = resolve_storage_url(args.storage)
    pool = Pool(size=args.pool_size, overflow=0)
    serve_proxy(ProxySettings(url, args.host, args.port, args.threads, pool, args.processes))
    return 0
