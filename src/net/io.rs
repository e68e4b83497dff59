//! The byte transport under a link's driver (and the simulator's
//! connections): plain TCP, or TLS over TCP. The protocol ([`super::proto`])
//! never sees either; the drivers are generic over [`Transport`], so the
//! plain path compiles to the same readiness calls as before TLS existed.
//!
//! | call              | plain TCP                                             | TLS (`tokio-rustls`)                                        |
//! |-------------------|-------------------------------------------------------|-------------------------------------------------------------|
//! | `write_now(wbuf)` | one `write` for everything queued, never waits        | nothing: a TLS stream offers no "try" call; `wait` writes   |
//! | `wait(rbuf, wbuf)`| readiness: readable, or writable while `wbuf` has bytes | writes `wbuf` (flushing rustls's records), then reads into `rbuf` |
//! | answers           | `Readable` / `Writable`: the caller reads or writes   | `Read(n)`: `n` bytes are in `rbuf` (0: closed); `Writable`  |
//! | `read_now(rbuf)`  | one `read`, `WouldBlock` when drained                 | `WouldBlock` (what `wait` read is all there is)             |
//! | `close(wbuf)`     | writes what is left, bounded by [`CLOSE_WAIT`]        | the same, then `close_notify`                               |
//!
//! `wait` is cancel-safe for both: bytes written are taken off `wbuf` and
//! bytes read put into `rbuf` in the same poll that reports them, so a
//! `select!` may drop it at any point without losing or repeating bytes.

use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, Interest};
use tokio::net::TcpStream;

/// How long a closing connection may take to write what is left.
pub(crate) const CLOSE_WAIT: Duration = Duration::from_millis(500);
/// A TLS read wants at least this much room in the read buffer ...
const TLS_READ_ROOM: usize = 16 * 1024;
/// ... and the buffer grows by this.
const TLS_READ_CHUNK: usize = 64 * 1024;

/// What [`Transport::wait`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Woken {
    /// Plain: bytes (or the end of the stream) wait to be read: call `read_now`.
    Readable,
    /// Room to write (plain), or bytes were written (TLS): go round again.
    Writable,
    /// TLS: this many bytes were read into the buffer; 0 is the end of the stream.
    Read(usize),
}

/// See the module documentation.
pub(crate) trait Transport {
    /// Writes what the socket takes now of `wbuf`, without waiting.
    fn write_now(&mut self, wbuf: &mut BytesMut) -> io::Result<()>;
    /// Waits until there is something to read, or progress writing `wbuf`.
    fn wait<'a>(
        &'a mut self,
        rbuf: &'a mut BytesMut,
        wbuf: &'a mut BytesMut,
    ) -> impl Future<Output = io::Result<Woken>> + Send + 'a;
    /// Reads what is there into `rbuf` without waiting: `Ok(0)` at the end
    /// of the stream, `WouldBlock` when there is nothing more.
    fn read_now(&mut self, rbuf: &mut BytesMut) -> io::Result<usize>;
    /// Best effort at the end of a connection: writes what is left of
    /// `wbuf` (bounded by [`CLOSE_WAIT`]) and, for TLS, says goodbye.
    fn close<'a>(&'a mut self, wbuf: &'a mut BytesMut) -> impl Future<Output = ()> + Send + 'a;
}

impl Transport for TcpStream {
    #[inline]
    fn write_now(&mut self, wbuf: &mut BytesMut) -> io::Result<()> {
        // One system call for many frames.
        if !wbuf.is_empty() {
            match self.try_write(wbuf) {
                Ok(n) => wbuf.advance(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    #[inline]
    fn wait<'a>(
        &'a mut self,
        _rbuf: &'a mut BytesMut,
        wbuf: &'a mut BytesMut,
    ) -> impl Future<Output = io::Result<Woken>> + Send + 'a {
        let interest = if wbuf.is_empty() {
            Interest::READABLE
        } else {
            Interest::READABLE | Interest::WRITABLE
        };
        let ready = self.ready(interest);
        async move {
            let r = ready.await?;
            Ok(if r.is_readable() || r.is_read_closed() {
                Woken::Readable
            } else {
                Woken::Writable
            })
        }
    }

    #[inline]
    fn read_now(&mut self, rbuf: &mut BytesMut) -> io::Result<usize> {
        self.try_read_buf(rbuf)
    }

    async fn close(&mut self, wbuf: &mut BytesMut) {
        if !wbuf.is_empty() {
            let _ = tokio::time::timeout(CLOSE_WAIT, self.write_all_buf(wbuf)).await;
        }
    }
}

/// A TLS stream (client or server side) as a [`Transport`].
pub(crate) struct Tls<S>(pub S);

impl<S> Transport for Tls<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    fn write_now(&mut self, _wbuf: &mut BytesMut) -> io::Result<()> {
        Ok(())
    }

    fn wait<'a>(
        &'a mut self,
        rbuf: &'a mut BytesMut,
        wbuf: &'a mut BytesMut,
    ) -> impl Future<Output = io::Result<Woken>> + Send + 'a {
        if rbuf.capacity() - rbuf.len() < TLS_READ_ROOM {
            rbuf.reserve(TLS_READ_CHUNK);
        }
        let stream = &mut self.0;
        poll_fn(move |cx| {
            let mut wrote = false;
            // The whole batch goes to rustls (which makes records of it
            // and writes them), as much as the socket takes.
            while !wbuf.is_empty() {
                match Pin::new(&mut *stream).poll_write(cx, wbuf) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    Poll::Ready(Ok(n)) => {
                        wbuf.advance(n);
                        wrote = true;
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => break,
                }
            }
            // Records rustls holds because the socket was full: pushed out
            // now, or the waker is registered for when it has room.
            if let Poll::Ready(Err(e)) = Pin::new(&mut *stream).poll_flush(cx) {
                return Poll::Ready(Err(e));
            }
            match tokio_util::io::poll_read_buf(Pin::new(&mut *stream), cx, rbuf) {
                Poll::Ready(Ok(n)) => Poll::Ready(Ok(Woken::Read(n))),
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                // The caller's state (room to take requests) depends on
                // what was written: report it.
                Poll::Pending if wrote => Poll::Ready(Ok(Woken::Writable)),
                Poll::Pending => Poll::Pending,
            }
        })
    }

    fn read_now(&mut self, _rbuf: &mut BytesMut) -> io::Result<usize> {
        Err(io::ErrorKind::WouldBlock.into())
    }

    async fn close(&mut self, wbuf: &mut BytesMut) {
        let _ = tokio::time::timeout(CLOSE_WAIT, async {
            self.0.write_all_buf(wbuf).await?;
            // close_notify: the peer tells a clean end from a cut.
            self.0.shutdown().await
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// The TLS side's contract, on an in-memory stream (the same
    /// `AsyncRead`/`AsyncWrite` calls a TLS stream answers): the batch is
    /// written, what arrives is read into the buffer, the end of the
    /// stream is `Read(0)`, and a dropped `wait` loses nothing.
    #[tokio::test]
    async fn the_async_side_writes_the_batch_and_reads_into_the_buffer() {
        let (ours, mut theirs) = tokio::io::duplex(64);
        let mut io = Tls(ours);
        let (mut rbuf, mut wbuf) = (BytesMut::new(), BytesMut::from(&b"0123456789"[..]));
        assert_eq!(
            io.wait(&mut rbuf, &mut wbuf).await.unwrap(),
            Woken::Writable
        );
        assert!(wbuf.is_empty());
        let mut got = [0u8; 10];
        theirs.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"0123456789");

        // Nothing to read: pending, and dropping it loses nothing.
        let pending =
            tokio::time::timeout(Duration::from_millis(10), io.wait(&mut rbuf, &mut wbuf)).await;
        assert!(pending.is_err());
        theirs.write_all(b"abc").await.unwrap();
        assert_eq!(io.wait(&mut rbuf, &mut wbuf).await.unwrap(), Woken::Read(3));
        assert_eq!(&rbuf[..], b"abc");
        assert!(matches!(
            io.read_now(&mut rbuf),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock
        ));

        // More than the pipe holds: written as the peer reads.
        let mut big = BytesMut::from(&[7u8; 200][..]);
        let reader = tokio::spawn(async move {
            let mut all = vec![0u8; 200];
            theirs.read_exact(&mut all).await.unwrap();
            drop(theirs);
            all
        });
        while !big.is_empty() {
            io.wait(&mut rbuf, &mut big).await.unwrap();
        }
        assert_eq!(reader.await.unwrap(), vec![7u8; 200]);
        assert_eq!(io.wait(&mut rbuf, &mut big).await.unwrap(), Woken::Read(0));
    }
}
