using System.Text;
using Garden.Host.GardenHttp;
using ErrorKind = Garden.Actors.ErrorKind;
using GardenException = Garden.Actors.GardenException;
using Api = Garden.Protocol.Api;

namespace Garden.GardenHttp.Tests;

/// <summary>Run, Attach and the stdout/stderr streams over real connections, driven by the bytes Garden's Go client
/// writes (garden-http-spec §6): the hijacked exchange byte for byte, buffering, exit status last, signals, stdin,
/// terminal sizes, clients that go away.</summary>
public sealed class ProcessStreamTests
{
    private const string RunRequestLine = "POST /containers/h1/processes HTTP/1.1";
    private static readonly string RunHead = "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    private static readonly string StreamHead = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";

    private static GardenHttpOptions Options(int retentionMs = 60_000, int buffer = 4 * 1024 * 1024) => new()
    {
        StreamRetention = TimeSpan.FromMilliseconds(retentionMs),
        OutputBufferBytes = buffer,
        LingerTimeout = TimeSpan.FromSeconds(2),
    };

    /// <summary>Go's Run request for <c>sh -c "echo hi; exit 3"</c> in h1, exactly as the client wrote it.</summary>
    private static string GoRun => Golden.Request(RunRequestLine);

    private static string GoRunOf(string specJson) =>
        $"POST /containers/h1/processes HTTP/1.1\r\nHost: api\r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: {Encoding.UTF8.GetByteCount(specJson) + 1}\r\nContent-Type: application/json\r\n\r\n{specJson}\n";

    private static string GoStream(string pid, string stream, string which, string handle = "h1") =>
        $"GET /containers/{handle}/processes/{pid}/attaches/{stream}/{which} HTTP/1.1\r\nHost: api\r\nUser-Agent: Go-http-client/1.1\r\nContent-Type: application/json\r\n\r\n";

    private static string GoAttach(string pid) => $"GET /containers/h1/processes/{pid} HTTP/1.1\r\nHost: api\r\nUser-Agent: Go-http-client/1.1\r\n\r\n";

    /// <summary>Sends a Run (or Attach), reads the head and the first message; answers the connection, the process
    /// the backend made, and the stream id.</summary>
    private static async Task<(RawConnection Main, FakeProcess Process, string StreamId)> StartAsync(TestServer t, string request, string expectedHead)
    {
        var main = await t.ConnectAsync();
        await main.SendAsync(request);
        Assert.Equal(expectedHead, RawResponse.WithoutDate(await main.ReadHeadAsync()));
        var first = await main.ReadLineAsync();
        var payload = System.Text.Json.JsonSerializer.Deserialize(first!, GardenJsonContext.Wire.ProcessPayload)!;
        // the newest process of that id (several clients may be starting at once)
        var process = t.Backend.Processes.Last(p => p.ProcessId == payload.ProcessID);
        Assert.Equal($"{{\"process_id\":\"{payload.ProcessID}\",\"stream_id\":\"{payload.StreamID}\"}}\n", first);
        return (main, process, payload.StreamID!);
    }

    private static async Task<RawConnection> OpenStreamAsync(TestServer t, string pid, string stream, string which)
    {
        var c = await t.ConnectAsync();
        await c.SendAsync(GoStream(pid, stream, which));
        Assert.Equal(StreamHead, RawResponse.WithoutDate(await c.ReadHeadAsync()));
        return c;
    }

    [Fact]
    public async Task The_Run_exchange_byte_for_byte()
    {
        await using var t = TestServer.Tcp(Options());
        await using var main = await t.ConnectAsync();
        await main.SendAsync(GoRun);
        var head = await main.ReadHeadAsync();
        Assert.Matches(@"\AHTTP/1\.1 201 Created\r\nContent-Type: application/json\r\nDate: \w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT\r\nTransfer-Encoding: chunked\r\n\r\n\z", head);
        Assert.Equal("{\"process_id\":\"p1\",\"stream_id\":\"1\"}\n", await main.ReadLineAsync());   // raw, not a chunk
        var run = t.Backend.Single<Api.RunRequest>("Run");
        Assert.Equal(("h1", "sh", "-c|echo hi; exit 3"), (run.Handle, run.Spec.Path, string.Join("|", run.Spec.Args)));
        var p = Assert.Single(t.Backend.Processes);

        p.Out("hi\n");   // before anyone asked for stdout: held
        await using var stdout = await t.ConnectAsync();
        await stdout.SendAsync(Golden.Request("GET /containers/h1/processes/p1/attaches/1/stdout HTTP/1.1"));
        Assert.Matches(@"\AHTTP/1\.1 200 OK\r\nDate: [^\r]+\r\nTransfer-Encoding: chunked\r\n\r\n\z", await stdout.ReadHeadAsync());
        Assert.Equal("hi\n", await stdout.ReadAsync(3));
        await using var stderr = await t.ConnectAsync();
        await stderr.SendAsync(Golden.Request("GET /containers/h1/processes/p1/attaches/1/stderr HTTP/1.1"));
        Assert.Equal(StreamHead, RawResponse.WithoutDate(await stderr.ReadHeadAsync()));

        p.Err("oops\n").Out("more\n").Exit(3);
        Assert.Equal("{\"process_id\":\"p1\",\"exit_status\":3}\n", await main.ReadLineAsync());
        Assert.Null(await main.ReadLineAsync());                  // then the server closes
        Assert.Equal("more\n", await stdout.ReadToEndAsync());   // everything, then the end (the client's Wait needs it)
        Assert.Equal("oops\n", await stderr.ReadToEndAsync());
        await p.Disposed;                                         // this client detached
        Assert.Empty(t.Backend.Requests<Api.SignalRequest>("Signal"));
    }

    [Fact]
    public async Task Stdin_terminal_size_TERM_and_end_of_stdin_as_Go_sends_them_reach_the_process()
    {
        await using var t = TestServer.Tcp(Options());
        var (main, p, _) = await StartAsync(t, GoRun, RunHead);
        await using var _m = main;
        // the four payloads Go's client wrote after Run: stdin "hello\n", SetTTY 123x456, Signal(TERM), stdin closed
        await main.SendAsync(Golden.Request(RunRequestLine + " (after)"));
        await p.StdinClosed.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal("hello\n", Encoding.UTF8.GetString(p.Stdin));
        await TestServer.Eventually(() => t.Backend.Requests<Api.SignalRequest>("Signal").Any(), "the TERM");
        var signal = t.Backend.Single<Api.SignalRequest>("Signal");
        Assert.Equal(("h1", "p1", 15), (signal.Handle, signal.ProcessId, signal.Signal));
        var tty = t.Backend.Single<Api.SetTtyRequest>("SetTty");
        Assert.Equal(("p1", 456u, 123u), (tty.ProcessId, tty.Size.Rows, tty.Size.Cols));
        // after the end of stdin the connection still carries signals (KILL) and still gets the exit status
        await main.SendAsync("{\"process_id\":\"p1\",\"signal\":1}\n");
        await TestServer.Eventually(() => t.Backend.Requests<Api.SignalRequest>("Signal").Any(s => s.Signal == 9), "the KILL");
        p.Exit(137);
        Assert.Equal("{\"process_id\":\"p1\",\"exit_status\":137}\n", await main.ReadLineAsync());
    }

    [Fact]
    public async Task Signals_sent_right_after_Run_answers_are_none_of_them_lost()
    {
        await using var t = TestServer.Tcp(Options());
        var (main, p, _) = await StartAsync(t, GoRun, RunHead);
        await using var _m = main;
        var burst = new StringBuilder();
        for (var i = 0; i < 20; i++) burst.Append("{\"process_id\":\"p1\",\"signal\":1}\n");
        burst.Append("{\"process_id\":\"p1\",\"signal\":0}\n{\"process_id\":\"p1\",\"signal\":7}\n{\"process_id\":\"p1\",\"signal\":0}\n");
        await main.SendAsync(burst.ToString());
        await TestServer.Eventually(() => t.Backend.Requests<Api.SignalRequest>("Signal").Count() == 22, "22 signals");
        Assert.Equal(Enumerable.Repeat(9, 20).Append(15).Append(15), t.Backend.Requests<Api.SignalRequest>("Signal").Select(s => s.Signal));
        p.Exit(137);
        Assert.Equal("{\"process_id\":\"p1\",\"exit_status\":137}\n", await main.ReadLineAsync());
    }

    [Fact]
    public async Task A_signal_is_not_stuck_behind_stdin_the_process_does_not_read()
    {
        await using var t = TestServer.Tcp(Options());
        t.Backend.NewProcess = r => new FakeProcess("p1") { StdinGate = new TaskCompletionSource() };   // never reads
        var (main, p, _) = await StartAsync(t, GoRun, RunHead);
        await using var _m = main;
        var data = new string('x', 32 * 1024);
        await main.SendAsync($"{{\"process_id\":\"p1\",\"source\":0,\"data\":\"{data}\"}}\n{{\"process_id\":\"p1\",\"signal\":1}}\n");
        await TestServer.Eventually(() => t.Backend.Requests<Api.SignalRequest>("Signal").Any(), "the KILL past the unread stdin");
        p.Exit(137);
        Assert.Equal("{\"process_id\":\"p1\",\"exit_status\":137}\n", await main.ReadLineAsync());
    }

    [Fact]
    public async Task The_exit_status_arrives_while_the_client_is_still_writing_stdin()
    {
        await using var t = TestServer.Tcp(Options());
        var (main, p, _) = await StartAsync(t, GoRun, RunHead);
        await using var _m = main;
        using var stop = new CancellationTokenSource();
        var line = Encoding.UTF8.GetBytes($"{{\"process_id\":\"p1\",\"source\":0,\"data\":\"{new string('y', 1024)}\"}}\n");
        var writer = Task.Run(async () =>
        {
            try
            {
                while (!stop.IsCancellationRequested) await main.Socket.SendAsync(line, System.Net.Sockets.SocketFlags.None, stop.Token);
            }
            catch (Exception)
            {
                // the server closed: as Go's stdin goroutine, the client ignores it
            }
        });
        await TestServer.Eventually(() => p.Stdin.Length > 100 * 1024, "stdin flowing");
        p.StdinBroken = true;   // the process exits; what is still sent has nowhere to go
        p.Exit(0);
        Assert.Equal("{\"process_id\":\"p1\",\"exit_status\":0}\n", await main.ReadLineAsync());
        await stop.CancelAsync();
        await writer;
    }

    [Fact]
    public async Task After_the_exit_status_the_server_reads_what_the_client_still_sends_instead_of_resetting()
    {
        // Closing a socket with unread bytes makes the kernel answer with a reset, and a reset can destroy an answer the
        // client has not read yet. The server stops sending (FIN) and drains until the client closes.
        await using var t = TestServer.Tcp(Options());
        var (main, p, _) = await StartAsync(t, GoRun, RunHead);
        await using var _m = main;
        p.Exit(0);
        Assert.Equal("{\"process_id\":\"p1\",\"exit_status\":0}\n", await main.ReadLineAsync());
        var late = Encoding.UTF8.GetBytes("{\"process_id\":\"p1\",\"source\":0,\"data\":\"late\"}\n");
        await main.Socket.SendAsync(late, System.Net.Sockets.SocketFlags.None);
        await Task.Delay(300);
        await main.Socket.SendAsync(late, System.Net.Sockets.SocketFlags.None);
        await Task.Delay(300);
        var buffer = new byte[16];
        Assert.Equal(0, await main.Socket.ReceiveAsync(buffer, System.Net.Sockets.SocketFlags.None));   // a clean end, no reset
        Assert.Empty(p.Stdin);   // and nothing after the exit reached the process
    }

    [Fact]
    public async Task Output_before_the_stream_requests_is_held_and_after_the_exit_a_late_request_still_gets_it()
    {
        await using var t = TestServer.Tcp(Options());
        var (main, p, id) = await StartAsync(t, GoRun, RunHead);
        await using var _m = main;
        p.Out("early\n").Err("warn\n").Out("late\n").Exit(0);
        Assert.Equal("{\"process_id\":\"p1\",\"exit_status\":0}\n", await main.ReadLineAsync());
        await using var stdout = await OpenStreamAsync(t, "p1", id, "stdout");
        Assert.Equal("early\nlate\n", await stdout.ReadToEndAsync());
        await using var stderr = await OpenStreamAsync(t, "p1", id, "stderr");
        Assert.Equal("warn\n", await stderr.ReadToEndAsync());
    }

    [Fact]
    public async Task A_stream_id_expires_after_the_retention_and_unknown_ones_get_a_head_and_an_end_never_an_error()
    {
        await using var t = TestServer.Tcp(Options(retentionMs: 200));
        var (main, p, id) = await StartAsync(t, GoRun, RunHead);
        await using var _m = main;
        p.Out("gone\n").Exit(0);
        Assert.Equal("{\"process_id\":\"p1\",\"exit_status\":0}\n", await main.ReadLineAsync());
        await TestServer.Eventually(() => t.Server.Streams == 0, "the stream id forgotten");
        await using var late = await OpenStreamAsync(t, "p1", id, "stdout");
        Assert.True(await late.ClosesAsync());
        await using var unknown = await OpenStreamAsync(t, "p1", "999", "stdout");
        Assert.True(await unknown.ClosesAsync());
    }

    [Fact]
    public async Task A_stream_id_answers_only_for_its_own_container_and_process_and_only_once()
    {
        await using var t = TestServer.Tcp(Options());
        var (main, p, id) = await StartAsync(t, GoRun, RunHead);
        await using var _m = main;
        await using var otherHandle = await t.ConnectAsync();
        await otherHandle.SendAsync(GoStream("p1", id, "stdout", handle: "h2"));
        await otherHandle.ReadHeadAsync();
        Assert.True(await otherHandle.ClosesAsync());
        await using var otherPid = await OpenStreamAsync(t, "p9", id, "stdout");
        Assert.True(await otherPid.ClosesAsync());
        await using var first = await OpenStreamAsync(t, "p1", id, "stdout");
        await using var second = await OpenStreamAsync(t, "p1", id, "stdout");
        Assert.True(await second.ClosesAsync());
        p.Out("mine\n").Exit(0);
        Assert.Equal("mine\n", await first.ReadToEndAsync());
    }

    [Fact]
    public async Task Output_nobody_asked_for_is_bounded_and_never_holds_up_the_exit_status()
    {
        await using var t = TestServer.Tcp(Options(buffer: 1024));
        var (main, p, id) = await StartAsync(t, GoRun, RunHead);
        await using var _m = main;
        for (var i = 0; i < 100; i++) p.Emit(Api.Output.Types.Stream.Stdout, new byte[1000]);
        p.Exit(0);
        Assert.Equal("{\"process_id\":\"p1\",\"exit_status\":0}\n", await main.ReadLineAsync());
        await using var stdout = await OpenStreamAsync(t, "p1", id, "stdout");
        Assert.Equal(1000, (await stdout.ReadToEndAsync()).Length);   // what fitted; the rest was dropped
    }

    [Fact]
    public async Task With_a_reader_attached_output_waits_for_it_and_nothing_is_dropped()
    {
        await using var t = TestServer.Tcp(Options(buffer: 1024));
        var (main, p, id) = await StartAsync(t, GoRun, RunHead);
        await using var _m = main;
        await using var stdout = await OpenStreamAsync(t, "p1", id, "stdout");
        var expected = new StringBuilder();
        for (var i = 0; i < 2000; i++)
        {
            var line = $"{i} {new string('z', 500)}\n";
            expected.Append(line);
            p.Out(line);
        }
        p.Exit(0);
        var received = stdout.ReadToEndAsync();
        Assert.Equal("{\"process_id\":\"p1\",\"exit_status\":0}\n", await main.ReadLineAsync());
        Assert.Equal(expected.ToString(), await received);
    }

    [Fact]
    public async Task A_tty_process_output_passes_byte_for_byte()
    {
        await using var t = TestServer.Tcp(Options());
        var (main, p, id) = await StartAsync(t, GoRunOf(Golden.Json("run.tty-default")), RunHead);
        await using var _m = main;
        var tty = t.Backend.Single<Api.RunRequest>("Run").Spec.Tty;
        Assert.Equal((24u, 80u), (tty.Rows, tty.Cols));
        await using var stdout = await OpenStreamAsync(t, "p1", id, "stdout");
        var bytes = Enumerable.Range(0, 256).Select(i => (byte)i).ToArray();   // raw bytes, not JSON: all 256 values
        p.Out("new\r\nline\r\n").Emit(Api.Output.Types.Stream.Stdout, bytes).Exit(0);
        var all = Encoding.Latin1.GetBytes(await ReadLatin1ToEndAsync(stdout));
        Assert.Equal(Encoding.ASCII.GetBytes("new\r\nline\r\n").Concat(bytes), all);
    }

    private static async Task<string> ReadLatin1ToEndAsync(RawConnection c)
    {
        // RawConnection decodes as UTF-8; read the bytes through the socket instead for a binary check
        var buffer = new byte[4096];
        var all = new List<byte>();
        int n;
        while ((n = await c.Socket.ReceiveAsync(buffer, System.Net.Sockets.SocketFlags.None)) > 0) all.AddRange(buffer.AsSpan(0, n).ToArray());
        return Encoding.Latin1.GetString([.. all]);
    }

    [Fact]
    public async Task A_resize_without_a_size_is_ignored_and_unknown_payload_fields_do_no_harm()
    {
        await using var t = TestServer.Tcp(Options());
        var (main, p, _) = await StartAsync(t, GoRun, RunHead);
        await using var _m = main;
        await main.SendAsync("{\"process_id\":\"p1\",\"tty\":{}}\n\n{\"process_id\":\"p1\",\"future\":[1,2],\"source\":1,\"data\":\"x\"}\n{\"process_id\":\"p1\",\"signal\":0}\n");
        await TestServer.Eventually(() => t.Backend.Requests<Api.SignalRequest>("Signal").Any(), "the TERM after them");
        Assert.Empty(t.Backend.Requests<Api.SetTtyRequest>("SetTty"));
        Assert.Empty(p.Stdin);
    }

    [Fact]
    public async Task Events_that_end_without_an_exit_are_reported_as_a_process_error()
    {
        await using var t = TestServer.Tcp(Options());
        var (main, p, _) = await StartAsync(t, GoRun, RunHead);
        await using var _m = main;
        p.Break(new GardenException(ErrorKind.Unavailable, "the connection to the container's agent broke"));
        Assert.Equal("{\"process_id\":\"p1\",\"error\":\"the connection to the container's agent broke\"}\n", await main.ReadLineAsync());
    }

    [Fact]
    public async Task Attach_gets_a_stream_of_its_own_and_every_attached_client_its_output_and_the_exit_status()
    {
        await using var t = TestServer.Tcp(Options());
        var (run, p, runStream) = await StartAsync(t, GoRun, RunHead);
        await using var _r = run;
        // the backend gives each client its own view of the process
        var (attach, view, attachStream) = await StartAsync(t, GoAttach("p1"), "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n");
        await using var _a = attach;
        Assert.NotSame(p, view);
        Assert.NotEqual(runStream, attachStream);
        var a = t.Backend.Single<Api.AttachRequest>("Attach");
        Assert.Equal(("h1", "p1", 0UL), (a.Handle, a.ProcessId, a.FromOffset));
        await using var runOut = await OpenStreamAsync(t, "p1", runStream, "stdout");
        await using var attachOut = await OpenStreamAsync(t, "p1", attachStream, "stdout");
        await using var attachErr = await OpenStreamAsync(t, "p1", attachStream, "stderr");
        foreach (var v in new[] { p, view })
        {
            for (var i = 1; i <= 10; i++) v.Out($"{i}\n").Err($"{i}\n");
            v.Exit(12);
        }
        Assert.Equal("{\"process_id\":\"p1\",\"exit_status\":12}\n", await run.ReadLineAsync());
        Assert.Equal("{\"process_id\":\"p1\",\"exit_status\":12}\n", await attach.ReadLineAsync());
        var ten = string.Concat(Enumerable.Range(1, 10).Select(i => $"{i}\n"));
        Assert.Equal(ten, await runOut.ReadToEndAsync());
        Assert.Equal(ten, await attachOut.ReadToEndAsync());
        Assert.Equal(ten, await attachErr.ReadToEndAsync());
        await TestServer.Eventually(() => t.Backend.Holds["h1"] == 0, "both holds released");
    }

    [Fact]
    public async Task Attach_to_an_unknown_process_is_a_ProcessNotFoundError_the_Go_client_can_read()
    {
        await using var t = TestServer.Tcp(Options());
        t.Backend.Fail("Attach", GardenException.UnknownProcess("h1", "idontexist"));
        var r = await t.SendAsync(GoAttach("idontexist"));
        Assert.Equal(404, r.Status);
        Assert.Equal("{\"Type\":\"ProcessNotFoundError\",\"Message\":\"unknown process idontexist in container h1\",\"Handle\":\"\",\"ProcessID\":\"idontexist\",\"Binary\":\"\"}\n", r.Body);
        // length-delimited and not "closing": otherwise Go's httputil.ClientConn reports "persistent connection closed"
        Assert.Equal(Encoding.UTF8.GetByteCount(r.Body).ToString(), r.Headers["Content-Length"]);
        Assert.False(r.Headers.ContainsKey("Connection"));
        Assert.False(r.Headers.ContainsKey("Transfer-Encoding"));
    }

    [Fact]
    public async Task Attach_to_a_process_that_has_exited_answers_the_ids_then_the_exit_status_at_once()
    {
        await using var t = TestServer.Tcp(Options());
        t.Backend.AttachTo = r => new FakeProcess(r.ProcessId).Out("kept\n").Exit(42);
        var (attach, _, _) = await StartAsync(t, GoAttach("done"), "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n");
        await using var _a = attach;
        Assert.Equal("{\"process_id\":\"done\",\"exit_status\":42}\n", await attach.ReadLineAsync());
    }

    [Theory]
    [InlineData("unknown handle", 404, "{\"Type\":\"ContainerNotFoundError\",\"Message\":\"unknown handle: h1\",\"Handle\":\"h1\",\"ProcessID\":\"\",\"Binary\":\"\"}")]
    [InlineData("no executable", 400, "{\"Type\":\"ExecutableNotFoundError\",\"Message\":\"path: executable file not found in $PATH: nope\",\"Handle\":\"\",\"ProcessID\":\"\",\"Binary\":\"\"}")]
    [InlineData("duplicate id", 409, "{\"Type\":\"\",\"Message\":\"process same-id already exists\",\"Handle\":\"\",\"ProcessID\":\"\",\"Binary\":\"\"}")]
    public async Task A_Run_that_cannot_start_is_an_error_answer_before_any_stream(string why, int status, string body)
    {
        await using var t = TestServer.Tcp(Options());
        t.Backend.Fail("Run", why switch
        {
            "unknown handle" => GardenException.UnknownHandle("h1"),
            "no executable" => new GardenException(ErrorKind.InvalidArgument, "path: executable file not found in $PATH: nope"),
            _ => new GardenException(ErrorKind.AlreadyExists, "process same-id already exists"),
        });
        await using var c = await t.ConnectAsync();
        await c.SendAsync(GoRun);
        var r = RawResponse.Parse(await c.ReadToEndAsync());
        Assert.Equal(status, r.Status);
        Assert.Equal(body + "\n", r.Body);
        Assert.False(r.Headers.ContainsKey("Connection"));
        Assert.Equal(Encoding.UTF8.GetByteCount(r.Body).ToString(), r.Headers["Content-Length"]);
        Assert.Equal(0, t.Server.Streams);
    }

    [Fact]
    public async Task A_client_that_goes_away_mid_stream_leaves_the_process_running_and_releases_everything()
    {
        await using var t = TestServer.Tcp(Options(retentionMs: 300));
        var (main, p, id) = await StartAsync(t, GoRun, RunHead);
        var stdout = await OpenStreamAsync(t, "p1", id, "stdout");
        p.Out("partial\n");
        Assert.Equal("partial\n", await stdout.ReadAsync(8));
        Assert.Equal(1, t.Backend.Holds["h1"]);   // the open Run holds the grace time
        await main.DisposeAsync();                // the client vanishes
        await p.Disposed.WaitAsync(TimeSpan.FromSeconds(10));   // detached ...
        Assert.Empty(t.Backend.Requests<Api.SignalRequest>("Signal"));   // ... not killed
        Assert.Empty(t.Backend.Requests<Api.DestroyRequest>("Destroy"));
        Assert.True(await stdout.ClosesAsync());  // its stream ends too (the client's Wait would return)
        await stdout.DisposeAsync();
        await TestServer.Eventually(() => t.Server.Connections == 0, "connections closed");
        await TestServer.Eventually(() => t.Server.Streams == 0, "the stream id forgotten");
        await TestServer.Eventually(() => t.Backend.Holds["h1"] == 0, "the grace time hold released");
        p.Out("nobody listens\n").Exit(0);        // later output has nowhere to go and harms nothing
    }

    [Fact]
    public async Task A_stdout_client_that_goes_away_does_not_stall_the_process_or_the_exit_status()
    {
        await using var t = TestServer.Tcp(Options(buffer: 1024));
        var (main, p, id) = await StartAsync(t, GoRun, RunHead);
        await using var _m = main;
        var stdout = await OpenStreamAsync(t, "p1", id, "stdout");
        await stdout.DisposeAsync();
        await Task.Delay(100);
        for (var i = 0; i < 100; i++) p.Emit(Api.Output.Types.Stream.Stdout, new byte[1000]);   // far more than the buffer
        p.Exit(0);
        Assert.Equal("{\"process_id\":\"p1\",\"exit_status\":0}\n", await main.ReadLineAsync());
    }

    [Fact]
    public async Task Stopping_the_server_ends_open_streams_without_an_exit_status_and_detaches()
    {
        var t = TestServer.Tcp(Options());
        var (main, p, _) = await StartAsync(t, GoRun, RunHead);
        await using var _m = main;
        await t.DisposeAsync();
        Assert.Null(await main.ReadLineAsync());
        await p.Disposed.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Empty(t.Backend.Requests<Api.SignalRequest>("Signal"));
    }

    [Fact]
    public async Task A_garbage_payload_ends_this_client_s_stream_and_the_process_keeps_running()
    {
        await using var t = TestServer.Tcp(Options());
        var (main, p, _) = await StartAsync(t, GoRun, RunHead);
        await using var _m = main;
        await main.SendAsync("this is not json\n");
        Assert.Null(await main.ReadLineAsync());
        await p.Disposed.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Empty(t.Backend.Requests<Api.SignalRequest>("Signal"));
    }

    [Fact]
    public async Task Run_over_a_unix_socket_works_the_same()
    {
        await using var t = TestServer.Unix(Options());
        var (main, p, id) = await StartAsync(t, GoRun, RunHead);
        await using var _m = main;
        await using var stdout = await OpenStreamAsync(t, "p1", id, "stdout");
        p.Out("over unix\n").Exit(0);
        Assert.Equal("{\"process_id\":\"p1\",\"exit_status\":0}\n", await main.ReadLineAsync());
        Assert.Equal("over unix\n", await stdout.ReadToEndAsync());
    }

    [Fact]
    public async Task Many_processes_and_requests_at_once_each_get_their_own_output_and_exit_status()
    {
        await using var t = TestServer.Tcp(Options());
        var n = 0;
        t.Backend.NewProcess = r => new FakeProcess($"p{Interlocked.Increment(ref n)}");
        async Task One()
        {
            var (main, p, id) = await StartAsync(t, GoRun, RunHead);
            await using var _m = main;
            await using var stdout = await OpenStreamAsync(t, p.ProcessId, id, "stdout");
            await using var stderr = await OpenStreamAsync(t, p.ProcessId, id, "stderr");
            var code = int.Parse(p.ProcessId[1..]);
            p.Out($"out of {p.ProcessId}\n").Err($"err of {p.ProcessId}\n").Exit(code % 256);
            Assert.Equal($"{{\"process_id\":\"{p.ProcessId}\",\"exit_status\":{code % 256}}}\n", await main.ReadLineAsync());
            Assert.Equal($"out of {p.ProcessId}\n", await stdout.ReadToEndAsync());
            Assert.Equal($"err of {p.ProcessId}\n", await stderr.ReadToEndAsync());
        }
        async Task Ping() => Assert.Equal("{}\n", (await t.SendAsync(PlainRouteTests.GoRequest("GET", "/ping"))).Body);
        await Task.WhenAll(Enumerable.Range(0, 40).Select(_ => One()).Concat(Enumerable.Range(0, 100).Select(_ => Ping())));
        Assert.Equal(40, t.Backend.Processes.Count);
        await TestServer.Eventually(() => t.Server.Connections == 0, "every connection closed");
    }
}
