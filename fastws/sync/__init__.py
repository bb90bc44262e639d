"""The synchronous API: threads and blocking sockets, shaped as ``websockets.sync``.

- :mod:`fastws.sync.client`: :func:`~fastws.sync.client.connect`,
  :func:`~fastws.sync.client.reconnect`, :func:`~fastws.sync.client.unix_connect`;
- :mod:`fastws.sync.server`: :func:`~fastws.sync.server.serve`,
  :func:`~fastws.sync.server.unix_serve`, :func:`~fastws.sync.server.basic_auth`;
- :mod:`fastws.sync.connection`: the :class:`~fastws.sync.connection.Connection`
  both sides share.
"""
