//! A TCP listener whose connections a handler can cut, so the simulator can drop a request
//! without answering it (a connection reset as the client sees it).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// Cuts one connection.
#[derive(Debug, Default)]
pub(crate) struct KillSwitch {
    killed: AtomicBool,
    reader: Mutex<Option<Waker>>,
}

impl KillSwitch {
    /// From now on the connection fails every read and write, so hyper closes it without
    /// writing the pending answer.
    pub(crate) fn kill(&self) {
        self.killed.store(true, Ordering::SeqCst);
        let waker = self
            .reader
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    fn is_killed(&self) -> bool {
        self.killed.load(Ordering::SeqCst)
    }
}

/// What handlers learn about their connection.
#[derive(Clone, Debug)]
pub(crate) struct ConnectionInfo {
    pub kill_switch: Arc<KillSwitch>,
}

/// A connection that can be cut.
#[derive(Debug)]
pub(crate) struct KillableStream {
    inner: TcpStream,
    kill_switch: Arc<KillSwitch>,
}

impl KillableStream {
    fn reset_error(&self) -> io::Error {
        // Zero linger makes the close an RST, as a crashed or overloaded server would send.
        let _ = self.inner.set_zero_linger();
        io::Error::new(
            io::ErrorKind::ConnectionReset,
            "connection cut by the simulator",
        )
    }
}

impl AsyncRead for KillableStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.kill_switch.is_killed() {
            return Poll::Ready(Err(this.reset_error()));
        }
        *this
            .kill_switch
            .reader
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(cx.waker().clone());
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for KillableStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.kill_switch.is_killed() {
            return Poll::Ready(Err(this.reset_error()));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.kill_switch.is_killed() {
            return Poll::Ready(Err(this.reset_error()));
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.kill_switch.is_killed() {
            return Poll::Ready(Err(this.reset_error()));
        }
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// Accepts connections and hands each one a kill switch.
pub(crate) struct KillableListener {
    inner: TcpListener,
}

impl KillableListener {
    pub(crate) fn new(inner: TcpListener) -> Self {
        Self { inner }
    }
}

impl Listener for KillableListener {
    type Io = KillableStream;
    type Addr = ConnectionInfo;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (stream, _peer): (TcpStream, SocketAddr) = Listener::accept(&mut self.inner).await;
        let _ = stream.set_nodelay(true);
        let kill_switch = Arc::new(KillSwitch::default());
        (
            KillableStream {
                inner: stream,
                kill_switch: Arc::clone(&kill_switch),
            },
            ConnectionInfo { kill_switch },
        )
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr().map(|_| ConnectionInfo {
            kill_switch: Arc::new(KillSwitch::default()),
        })
    }
}

impl Connected<IncomingStream<'_, KillableListener>> for ConnectionInfo {
    fn connect_info(stream: IncomingStream<'_, KillableListener>) -> Self {
        stream.remote_addr().clone()
    }
}
