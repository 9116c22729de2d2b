using System.Text;
using System.Text.Json;
using ErrorKind = Garden.Actors.ErrorKind;
using GardenException = Garden.Actors.GardenException;
using Garden.Host.GardenHttp;
using Api = Garden.Protocol.Api;

namespace Garden.GardenHttp.Tests;

/// <summary>Garden's JSON as Go's encoding/json reads and writes it, against samples written by Garden's own Go types
/// (Golden/garden-json.golden): what we write is byte for byte what Go writes (so Go reads it back the same), and what
/// Go writes means to us what it means to Go, down to the protobuf the backend gets.</summary>
public sealed class GoldenJsonTests
{
    private static GardenJsonContext J => GardenJsonContext.Wire;

    private static string Write<T>(T value, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type) => JsonSerializer.Serialize(value, type);

    private static T Read<T>(string golden, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type) =>
        JsonSerializer.Deserialize(Golden.Json(golden), type) ?? throw new InvalidDataException("null");

    private static readonly ContainerInfo SampleInfo = new()
    {
        State = "active", Events = ["out of memory"], HostIP = "10.254.0.1", ContainerIP = "10.254.0.2", ExternalIP = "",
        ContainerPath = "/var/lib/garden-actors/depot/h1", ProcessIDs = ["p1"],
        Properties = new SortedDictionary<string, string> { ["k"] = "v" },
        MappedPorts = [new PortMapping { HostPort = 61001, ContainerPort = 8080 }],
    };

    private static readonly Metrics SampleMetrics = new()
    {
        MemoryStat = new ContainerMemoryStat
        {
            ActiveAnon = 1, ActiveFile = 2, Cache = 3, HierarchicalMemoryLimit = 4, InactiveAnon = 5, InactiveFile = 6, MappedFile = 7,
            Pgfault = 8, Pgmajfault = 9, Pgpgin = 10, Pgpgout = 11, Rss = 12, TotalActiveAnon = 13, TotalActiveFile = 14, TotalCache = 15,
            TotalInactiveAnon = 16, TotalInactiveFile = 17, TotalMappedFile = 18, TotalPgfault = 19, TotalPgmajfault = 20, TotalPgpgin = 21,
            TotalPgpgout = 22, TotalRss = 23, TotalUnevictable = 24, Unevictable = 25, Swap = 26, HierarchicalMemswLimit = 27, TotalSwap = 28,
            TotalUsageTowardLimit = 29,
        },
        CPUStat = new ContainerCPUStat { Usage = 30, User = 31, System = 32 },
        DiskStat = new ContainerDiskStat { TotalBytesUsed = 33, TotalInodesUsed = 34, ExclusiveBytesUsed = 35, ExclusiveInodesUsed = 36 },
        NetworkStat = new ContainerNetworkStat { RxBytes = 37, TxBytes = 38 },
        PidStat = new ContainerPidStat { Current = 39, Max = 40 },
        Age = 41_000_000_000,
    };

    // ------------------------------------------------------------------ what we write = what Go writes

    [Fact]
    public void Answers_are_written_byte_for_byte_as_Go_writes_them()
    {
        Assert.Equal(Golden.Json("ping"), Write(Empty.Instance, J.Empty));
        Assert.Equal(Golden.Json("capacity"), Write(new Capacity
        {
            MemoryInBytes = 16777216000, DiskInBytes = 100000000000, SchedulableDiskInBytes = 100000000000, MaxContainers = 250,
        }, J.Capacity));
        Assert.Equal(Golden.Json("create.response"), Write(new CreateResponse { Handle = "h1" }, J.CreateResponse));
        Assert.Equal(Golden.Json("list.response"), Write(new ListResponse { Handles = ["a", "b"] }, J.ListResponse));
        Assert.Equal(Golden.Json("list.response.empty"), Write(new ListResponse(), J.ListResponse));
        Assert.Equal(Golden.Json("info"), Write(SampleInfo, J.ContainerInfo));
        Assert.Equal(Golden.Json("info.empty"), Write(new ContainerInfo { State = "stopped", Properties = [], MappedPorts = [] }, J.ContainerInfo));
        Assert.Equal(Golden.Json("metrics"), Write(SampleMetrics, J.Metrics));
        Assert.Equal(Golden.Json("metrics.zero"), Write(new Metrics(), J.Metrics));
        Assert.Equal(Golden.Json("metrics.max"), Write(new Metrics { MemoryStat = new ContainerMemoryStat { HierarchicalMemoryLimit = ulong.MaxValue } }, J.Metrics));
        Assert.Equal(Golden.Json("limits.bandwidth"), Write(new BandwidthLimits { RateInBytesPerSecond = 1000, BurstRateInBytesPerSecond = 2000 }, J.BandwidthLimits));
        Assert.Equal(Golden.Json("limits.bandwidth.empty"), Write(new BandwidthLimits(), J.BandwidthLimits));
        Assert.Equal(Golden.Json("limits.cpu.shares"), Write(new CPULimits { LimitInShares = 50 }, J.CPULimits));
        Assert.Equal(Golden.Json("limits.cpu.weight"), Write(new CPULimits { Weight = 512 }, J.CPULimits));
        Assert.Equal(Golden.Json("limits.disk"), Write(new DiskLimits { ByteHard = 67108864 }, J.DiskLimits));
        Assert.Equal(Golden.Json("limits.disk.empty"), Write(new DiskLimits(), J.DiskLimits));
        Assert.Equal(Golden.Json("limits.memory"), Write(new MemoryLimits { LimitInBytes = 134217728 }, J.MemoryLimits));
        Assert.Equal(Golden.Json("limits.memory.empty"), Write(new MemoryLimits(), J.MemoryLimits));
        Assert.Equal(Golden.Json("netin.response"), Write(new NetInResponse { HostPort = 61001, ContainerPort = 8080 }, J.NetInResponse));
        Assert.Equal(Golden.Json("properties"), Write(new SortedDictionary<string, string> { ["b"] = "2", ["a"] = "1" }, J.SortedDictionaryStringString));
        Assert.Equal(Golden.Json("property"), Write(new PropertyValue { Value = "v 1" }, J.PropertyValue));
    }

    [Fact]
    public void Bulk_answers_are_keyed_by_handle_with_an_error_entry_for_a_failed_one()
    {
        var unknown = GardenErrors.OfEntry("unknown handle: nope");
        Assert.Equal(Golden.Json("bulkinfo"), Write(new SortedDictionary<string, ContainerInfoEntry>(StringComparer.Ordinal)
        {
            ["nope"] = new ContainerInfoEntry { Err = unknown },
            ["h1"] = new ContainerInfoEntry { Info = SampleInfo },
        }, J.SortedDictionaryStringContainerInfoEntry));
        Assert.Equal(Golden.Json("bulkmetrics"), Write(new SortedDictionary<string, ContainerMetricsEntry>(StringComparer.Ordinal)
        {
            ["nope"] = new ContainerMetricsEntry { Err = unknown },
            ["h1"] = new ContainerMetricsEntry { Metrics = SampleMetrics },
        }, J.SortedDictionaryStringContainerMetricsEntry));
    }

    [Fact]
    public void Process_payloads_keep_zero_exit_status_and_leave_out_what_is_absent()
    {
        Assert.Equal(Golden.Json("payload.started"), Write(new ProcessPayload { ProcessID = "p1", StreamID = "17" }, J.ProcessPayload));
        Assert.Equal(Golden.Json("payload.exit0"), Write(new ProcessPayload { ProcessID = "p1", ExitStatus = 0 }, J.ProcessPayload));
        Assert.Equal(Golden.Json("payload.exit3"), Write(new ProcessPayload { ProcessID = "p1", ExitStatus = 3 }, J.ProcessPayload));
        Assert.Equal(Golden.Json("payload.error"), Write(new ProcessPayload { ProcessID = "p1", Error = "the process stream broke" }, J.ProcessPayload));
    }

    [Theory]
    [InlineData("error.containerNotFound", ErrorKind.NotFound, "unknown handle: foo", null, 404)]
    [InlineData("error.processNotFound", ErrorKind.NotFound, "unknown process idontexist in container h1", "idontexist", 404)]
    [InlineData("error.serviceUnavailable", ErrorKind.Unavailable, "recovering", null, 503)]
    [InlineData("error.executableNotFound", ErrorKind.InvalidArgument, "executable file not found in $PATH: nope", null, 400)]
    [InlineData("error.generic", ErrorKind.AlreadyExists, "Handle 'h1' already in use", null, 409)]
    public void Errors_carry_the_type_and_field_the_Go_client_maps_back(string golden, ErrorKind kind, string message, string? pid, int status)
    {
        // the two not-found errors as the domain makes them (GardenException.Subject says which, not the message)
        var e = golden switch
        {
            "error.containerNotFound" => GardenException.UnknownHandle("foo"),
            "error.processNotFound" => GardenException.UnknownProcess("h1", "idontexist"),
            _ => new GardenException(kind, message),
        };
        Assert.Equal(message, e.Message);
        var (code, error) = GardenErrors.From(e, pid);
        Assert.Equal(status, code);
        var expected = JsonSerializer.Deserialize(Golden.Json(golden), J.GardenError)!;
        // the Go client ignores Message for the two not-found errors (it rebuilds it from Handle / ProcessID); ours says more
        Assert.Equal(expected with { Message = error.Message }, error);
        if (golden is not ("error.processNotFound")) Assert.Equal(Golden.Json(golden), Write(error, J.GardenError));
    }

    [Fact]
    public void A_NotFound_that_only_reads_like_an_unknown_handle_stays_generic()
    {
        var (status, e) = GardenErrors.From(new GardenException(ErrorKind.NotFound, "unknown handle: made up by hand"));
        Assert.Equal((404, "", ""), (status, e.Type, e.Handle));
    }

    [Fact]
    public void Errors_no_Garden_type_fits_are_generic_and_carry_the_message()
    {
        var (status, e) = GardenErrors.From(new GardenException(ErrorKind.NotFound, "container h1 has no property \"x\""));
        Assert.Equal((404, "", "container h1 has no property \"x\"", ""), (status, e.Type, e.Message, e.Handle));
        Assert.Equal((409, ""), (GardenErrors.From(new GardenException(ErrorKind.FailedPrecondition, "stopped")).Status, GardenErrors.From(new GardenException(ErrorKind.FailedPrecondition, "stopped")).Error.Type));
        Assert.Equal((500, "", "boom"), (GardenErrors.From(new InvalidOperationException("boom")).Status, GardenErrors.From(new InvalidOperationException("boom")).Error.Type, GardenErrors.From(new InvalidOperationException("boom")).Error.Message));
        Assert.Equal(500, GardenErrors.From(new GardenException(ErrorKind.ResourceExhausted, "max containers reached")).Status);
        Assert.Equal(500, GardenErrors.From(new GardenException(ErrorKind.Internal, "x")).Status);
        Assert.Equal(GardenErrors.ContainerNotFound, GardenErrors.From(new AggregateException(GardenException.UnknownHandle("x"))).Error.Type);
    }

    // ------------------------------------------------------------------ what Go writes, read by us

    [Fact]
    public void A_full_ContainerSpec_becomes_the_CreateRequest_it_means()
    {
        var c = GardenConvert.ToCreate(Read("create.full", J.ContainerSpec)).Spec;
        Assert.Equal("h1", c.Handle);
        Assert.Equal(500UL, c.GraceTimeMs);
        Assert.True(c.HasGraceTimeMs);
        Assert.Equal("/var/rootfs", c.Rootfs);
        Assert.Equal([("/src/ro", "/dst/ro", true), ("/src/rw", "/dst/rw", false)], c.BindMounts.Select(b => (b.Src, b.Dst, b.ReadOnly)));
        Assert.Equal("10.254.0.0/30", c.Network);
        Assert.Equal(new Dictionary<string, string> { ["k"] = "v", ["team"] = "a b" }, c.Properties);
        Assert.Equal(["A=1", "B=two words"], c.Env);
        Assert.True(c.Privileged);
        Assert.Equal(new Api.Limits
        {
            BandwidthRate = 1000, BandwidthBurst = 2000, CpuWeight = 50, DiskBytes = 67108864, MemoryBytes = 134217728, Pids = 50,
            DiskScope = Api.DiskScope.Exclusive,   // Garden's scope 1
        }, c.Limits);
        var rule = Assert.Single(c.NetOut);
        Assert.Equal(Api.NetOutRule.Types.Protocol.Tcp, rule.Protocol);
        Assert.Equal(("10.0.0.1", "10.0.0.1"), (rule.Networks[0].Start, rule.Networks[0].End));
        Assert.Equal((80u, 80u), (rule.Ports[0].Start, rule.Ports[0].End));
        Assert.Equal((0u, 8080u), (c.NetIn[0].HostPort, c.NetIn[0].ContainerPort));
    }

    [Fact]
    public void The_minimal_ContainerSpec_asks_for_defaults_everywhere()
    {
        var c = GardenConvert.ToCreate(Read("create.minimal", J.ContainerSpec)).Spec;
        Assert.Equal(new Api.ContainerSpec { Limits = new Api.Limits() }, c);
        Assert.False(c.HasGraceTimeMs);   // the daemon's default, not 0 = never
    }

    [Fact]
    public void Cpu_weight_is_taken_under_either_name()
    {
        Assert.Equal(512UL, GardenConvert.ToCreate(Read("create.weight", J.ContainerSpec)).Spec.Limits.CpuWeight);
        Assert.Equal(50UL, GardenConvert.ToCreate(Read("create.full", J.ContainerSpec)).Spec.Limits.CpuWeight);
    }

    [Theory]
    [InlineData("create.unlimited-memory", "limits.memory_limits.limit_in_bytes")]
    [InlineData("create.unlimited-pids", "limits.pid_limits.max")]
    public void A_limit_of_2_to_the_64_minus_1_is_refused_naming_the_field(string golden, string field)
    {
        var spec = Read(golden, J.ContainerSpec);   // parsed as the integer it is, not a double
        var e = Assert.Throws<GardenException>(() => GardenConvert.ToCreate(spec));
        Assert.Equal(ErrorKind.InvalidArgument, e.Kind);
        Assert.StartsWith(field + ":", e.Message);
    }

    [Theory]
    [InlineData("docker://127.0.0.1:5000/busybox:v1")]
    [InlineData("oci:///tmp/image:v1")]
    [InlineData("oci-archive:///tmp/image.tar")]
    [InlineData("docker-archive:///tmp/image.tar")]
    public void An_image_uri_with_an_image_scheme_is_the_create_s_image(string uri)
    {
        var spec = GardenConvert.ToCreate(new ContainerSpec { Image = new ImageRef { URI = uri } }).Spec;
        Assert.Equal((uri, ""), (spec.Image, spec.Rootfs));
    }

    [Theory]
    [InlineData("http://example.com/image")]
    [InlineData("relative/dir")]
    public void An_image_that_is_neither_a_directory_nor_an_image_is_refused_at_once(string uri)
    {
        var e = Assert.Throws<GardenException>(() => GardenConvert.ToCreate(new ContainerSpec { Image = new ImageRef { URI = uri } }));
        Assert.Equal(ErrorKind.InvalidArgument, e.Kind);
        Assert.Contains(uri, e.Message);
        Assert.StartsWith("image.uri:", e.Message);
        Assert.Equal("/a/b", GardenConvert.ToCreate(new ContainerSpec { Image = new ImageRef { URI = "raw:///a/b" } }).Spec.Rootfs);
        Assert.Equal("/old", GardenConvert.ToCreate(new ContainerSpec { RootFSPath = "/old" }).Spec.Rootfs);
        Assert.Throws<GardenException>(() => GardenConvert.ToCreate(new ContainerSpec { RootFSPath = "/old", Image = new ImageRef { URI = "/new" } }));
    }

    [Fact]
    public void Bind_mounts_from_inside_the_container_and_unknown_modes_are_refused()
    {
        Assert.StartsWith("bind_mounts[0].origin:", Assert.Throws<GardenException>(() => GardenConvert.ToCreate(new ContainerSpec
        {
            BindMounts = [new BindMount { SrcPath = "/a", DstPath = "/b", Origin = 1 }],
        })).Message);
        Assert.StartsWith("bind_mounts[0].mode:", Assert.Throws<GardenException>(() => GardenConvert.ToCreate(new ContainerSpec
        {
            BindMounts = [new BindMount { SrcPath = "/a", DstPath = "/b", Mode = 7 }],
        })).Message);
    }

    [Fact]
    public void Grace_time_nanoseconds_become_milliseconds_rounded_up()
    {
        Assert.Equal(500UL, GardenConvert.Millis(500_000_000));
        Assert.Equal(1UL, GardenConvert.Millis(1));              // not 0 = never reaped
        Assert.Equal(51UL, GardenConvert.Millis(50_000_001));
        var grace = JsonSerializer.Deserialize(Golden.Json("graceTime"), J.Int64);
        Assert.Equal(500UL, GardenConvert.ToGraceTime("h", grace).GraceTimeMs);
        Assert.Throws<GardenException>(() => GardenConvert.ToGraceTime("h", -1));
    }

    [Fact]
    public void Net_out_rules_keep_protocol_ranges_and_icmp_code_zero_apart_from_every_code()
    {
        Assert.Equal(new Api.NetOutRule(), GardenConvert.ToRule(Read("netout.all", J.NetOutRule), "rule"));
        var tcp = GardenConvert.ToRule(Read("netout.tcp", J.NetOutRule), "rule");
        Assert.Equal((Api.NetOutRule.Types.Protocol.Tcp, "10.0.0.1", "10.0.0.255", 80u, 8080u, true),
            (tcp.Protocol, tcp.Networks[0].Start, tcp.Networks[0].End, tcp.Ports[0].Start, tcp.Ports[0].End, tcp.Log));
        var icmp = GardenConvert.ToRule(Read("netout.icmp", J.NetOutRule), "rule");
        Assert.Equal((Api.NetOutRule.Types.Protocol.Icmp, 8u, 0, "192.168.1.0", "192.168.1.255"),
            (icmp.Protocol, icmp.Icmp.Type, icmp.Icmp.Code, icmp.Networks[0].Start, icmp.Networks[0].End));
        Assert.Equal(-1, GardenConvert.ToRule(Read("netout.icmp-anycode", J.NetOutRule), "rule").Icmp.Code);
        Assert.Empty(GardenConvert.ToBulkNetOut("h", JsonSerializer.Deserialize(Golden.Json("bulknetout.nil"), J.ListNetOutRule)).Rules);
        var two = GardenConvert.ToBulkNetOut("h", JsonSerializer.Deserialize(Golden.Json("bulknetout.two"), J.ListNetOutRule)).Rules;
        Assert.Equal([Api.NetOutRule.Types.Protocol.Udp, Api.NetOutRule.Types.Protocol.Tcp], two.Select(r => r.Protocol));
        Assert.StartsWith("rule.protocol:", Assert.Throws<GardenException>(() => GardenConvert.ToRule(new NetOutRule { Protocol = 4 }, "rule")).Message);
    }

    [Fact]
    public void A_full_ProcessSpec_becomes_the_RunRequest_it_means()
    {
        var r = GardenConvert.ToRun("h1", Read("run.full", J.ProcessSpec));
        Assert.Equal("h1", r.Handle);
        var p = r.Spec;
        Assert.Equal(("some-id", "/bin/sh", "/home/alice", "alice"), (p.Id, p.Path, p.Dir, p.User));
        Assert.Equal(["-c", "ulimit -a"], p.Args);
        Assert.Equal(["TEST=hello", "FRUIT=banana"], p.Env);
        Assert.Equal([("as", ulong.MaxValue), ("nofile", 0UL), ("nproc", 4567UL)], p.Rlimits.Select(l => (l.Name, l.Soft)));
        Assert.All(p.Rlimits, l => Assert.Equal(l.Soft, l.Hard));
        Assert.Equal((456u, 123u), (p.Tty.Rows, p.Tty.Cols));
        Assert.False(r.Detach);
    }

    [Fact]
    public void A_tty_without_a_size_is_80x24_and_no_tty_is_none()
    {
        var tty = GardenConvert.ToRun("h", Read("run.tty-default", J.ProcessSpec)).Spec.Tty;
        Assert.Equal((24u, 80u), (tty.Rows, tty.Cols));
        Assert.Null(GardenConvert.ToRun("h", Read("run.minimal", J.ProcessSpec)).Spec.Tty);
        Assert.Equal("1000000000:1000000000", GardenConvert.ToRun("h", Read("run.uidgid", J.ProcessSpec)).Spec.User);
    }

    [Fact]
    public void A_process_with_its_own_image_is_a_pea_and_its_limits_its_own()
    {
        var p = GardenConvert.ToRun("h", Read("run.pea", J.ProcessSpec)).Spec;
        Assert.Equal("/var/pea", p.Image);
        // OverrideContainerLimits present but empty: limits of its own, none set
        Assert.NotNull(p.PeaLimits);
        Assert.Equal((0UL, 0UL), (p.PeaLimits.MemoryBytes, p.PeaLimits.CpuWeight));
        // absent: it shares its container's
        var shared = GardenConvert.ToRun("h", new ProcessSpec { Path = "ls", Image = new ImageRef { URI = "/var/pea" } }).Spec;
        Assert.Null(shared.PeaLimits);
        var own = GardenConvert.ToRun("h", new ProcessSpec
        {
            Path = "ls", Image = new ImageRef { URI = "raw:///var/pea" },
            OverrideContainerLimits = new ProcessLimits { Memory = new MemoryLimits { LimitInBytes = 32 << 20 }, CPU = new CPULimits { LimitInShares = 512 } },
        }).Spec;
        Assert.Equal(("/var/pea", 32UL << 20, 512UL), (own.Image, own.PeaLimits.MemoryBytes, own.PeaLimits.CpuWeight));
        // no image: an ordinary process, whatever limits it names
        Assert.Equal("", GardenConvert.ToRun("h", Read("run.minimal", J.ProcessSpec)).Spec.Image);
    }

    [Theory]
    [InlineData("docker:///cfgarden/hello", "image.uri:")]
    [InlineData("relative/dir", "image.uri:")]
    public void A_pea_image_that_is_not_a_directory_path_is_refused(string uri, string field)
    {
        var e = Assert.Throws<GardenException>(() => GardenConvert.ToRun("h", new ProcessSpec { Path = "ls", Image = new ImageRef { URI = uri } }));
        Assert.Equal(ErrorKind.InvalidArgument, e.Kind);
        Assert.StartsWith(field, e.Message);
        Assert.Contains(uri, e.Message);
    }

    [Fact]
    public void Bind_mounts_of_a_process_are_refused()
    {
        var e = Assert.Throws<GardenException>(() => GardenConvert.ToRun("h", Read("run.bindmounts-no-image", J.ProcessSpec)));
        Assert.Equal(ErrorKind.InvalidArgument, e.Kind);
        Assert.StartsWith("bind_mounts:", e.Message);
    }

    [Fact]
    public void Client_payloads_keep_signal_0_and_source_0_apart_from_absent()
    {
        var stdin = Read("payload.stdin", J.ProcessPayload);
        Assert.Equal((0, "hello\n", (int?)null), (stdin.Source, stdin.Data, stdin.Signal));
        var close = Read("payload.stdin-close", J.ProcessPayload);
        Assert.Equal((0, (string?)null), (close.Source, close.Data));
        Assert.Equal((0, (int?)null), (Read("payload.term", J.ProcessPayload).Signal, Read("payload.term", J.ProcessPayload).Source));
        Assert.Equal(1, Read("payload.kill", J.ProcessPayload).Signal);
        Assert.Equal((123, 456), (Read("payload.tty", J.ProcessPayload).TTY!.WindowSize!.Columns, Read("payload.tty", J.ProcessPayload).TTY!.WindowSize!.Rows));
        // Go turns invalid UTF-8 into U+FFFD and escapes <, >, & — the data arrives as the client meant it
        Assert.Equal("a\uFFFDb<>&\"\\\n\t\u0001", Read("payload.stdin-binary", J.ProcessPayload).Data);
        Assert.Equal(15, GardenConvert.SignalNumber(0));
        Assert.Equal(9, GardenConvert.SignalNumber(1));
        Assert.Null(GardenConvert.SignalNumber(2));
    }

    [Fact]
    public void Keys_are_matched_case_insensitively_unknown_keys_ignored_and_null_is_absent_as_in_Go()
    {
        var spec = JsonSerializer.Deserialize("""{"HANDLE":"x","Env":null,"limits":{"Memory_Limits":{"LIMIT_IN_BYTES":5}},"future_field":{"a":[1]},"properties":{"k":null},"env":["A",null]}""", J.ContainerSpec)!;
        var c = GardenConvert.ToCreate(spec).Spec;
        Assert.Equal(("x", 5UL), (c.Handle, c.Limits.MemoryBytes));
        Assert.Equal("", c.Properties["k"]);
        Assert.Equal(["A", ""], c.Env);
        Assert.Equal(new Api.ContainerSpec { Limits = new Api.Limits() }, GardenConvert.ToCreate(JsonSerializer.Deserialize("null", J.ContainerSpec) ?? new()).Spec);
    }

    [Theory]
    [InlineData("""{"limits":{"memory_limits":{"limit_in_bytes":1.8446744073709552e+19}}}""")]
    [InlineData("""{"limits":{"memory_limits":{"limit_in_bytes":-1}}}""")]
    [InlineData("""{"limits":{"memory_limits":{"limit_in_bytes":"5"}}}""")]
    [InlineData("""{"limits":{"memory_limits":{"limit_in_bytes":18446744073709551616}}}""")]
    [InlineData("""{"grace_time":"1s"}""")]
    public void Numbers_are_integers_of_their_type_as_Go_reads_them(string json) =>
        Assert.Throws<JsonException>(() => JsonSerializer.Deserialize(json, J.ContainerSpec));

    // ------------------------------------------------------------------ protobuf answers → Garden JSON

    [Fact]
    public void Info_speaks_Garden_states_and_keeps_properties_ports_and_addresses()
    {
        var info = new Api.ContainerInfo { State = "stopping", HostIp = "10.254.0.1", ContainerIp = "10.254.0.2", ContainerPath = "/d/h1" };
        info.Events.Add("out of memory");
        info.ProcessIds.Add("p1");
        info.Properties["k"] = "v";
        info.MappedPorts.Add(new Api.PortMapping { HostPort = 61001, ContainerPort = 8080 });
        Assert.Equal(Golden.Json("info").Replace("/var/lib/garden-actors/depot/h1", "/d/h1"), Write(GardenConvert.FromInfo(info), J.ContainerInfo));
        Assert.Equal("stopped", GardenConvert.FromInfo(new Api.ContainerInfo { State = "stopped" }).State);
        Assert.Equal("broken", GardenConvert.FromInfo(new Api.ContainerInfo { State = "broken" }).State);
    }

    [Fact]
    public void Metrics_map_memory_stat_cpu_disk_pids_network_and_age_in_nanoseconds()
    {
        var m = new Api.ContainerMetrics
        {
            MemoryUsageBytes = 1000, CpuUsageNs = 30, CpuUserNs = 31, CpuSystemNs = 32, DiskUsedBytes = 33, PidsCurrent = 39, PidsMax = 0,
            AgeSeconds = 41, RxBytes = 37, TxBytes = 38, DiskImageBytes = 2000, DiskTotalBytes = 2033,
        };
        m.MemoryStat.Add(new Dictionary<string, ulong> { ["cache"] = 3, ["rss"] = 12, ["total_inactive_file"] = 100, ["hierarchical_memory_limit"] = ulong.MaxValue });
        var g = GardenConvert.FromMetrics(m);
        Assert.Equal((3UL, 12UL, 3UL, ulong.MaxValue), (g.MemoryStat.Cache, g.MemoryStat.Rss, g.MemoryStat.TotalCache, g.MemoryStat.HierarchicalMemoryLimit));
        Assert.Equal(900UL, g.MemoryStat.TotalUsageTowardLimit);   // usage - total_inactive_file
        Assert.Equal((30UL, 31UL, 32UL), (g.CPUStat.Usage, g.CPUStat.User, g.CPUStat.System));
        Assert.Equal((39UL, 0UL), (g.PidStat.Current, g.PidStat.Max));   // 0 = no pid limit, as GATS wants
        Assert.Equal((37UL, 38UL), (g.NetworkStat!.RxBytes, g.NetworkStat.TxBytes));
        Assert.Equal(41_000_000_000L, g.Age);
        // exclusive: what the container wrote; total: that and its image (the base rootfs)
        Assert.Equal((2033UL, 33UL), (g.DiskStat.TotalBytesUsed, g.DiskStat.ExclusiveBytesUsed));
        Assert.Contains("\"hierarchical_memory_limit\":18446744073709551615,", Write(g, J.Metrics));   // an integer, never 1.8e19
        // cgroup v2 names
        var v2 = new Api.ContainerMetrics();
        v2.MemoryStat.Add(new Dictionary<string, ulong> { ["anon"] = 7, ["file"] = 8, ["file_mapped"] = 9 });
        var g2 = GardenConvert.FromMetrics(v2).MemoryStat;
        Assert.Equal((7UL, 8UL, 9UL, 7UL), (g2.Rss, g2.Cache, g2.MappedFile, g2.TotalRss));
    }

    [Fact]
    public void Garden_s_disk_scope_0_is_total_1_exclusive_anything_else_is_refused_naming_the_field()
    {
        Api.Limits Disk(string limits) => GardenConvert.ToCreate(JsonSerializer.Deserialize("{\"limits\":{\"disk_limits\":" + limits + "}}", J.ContainerSpec)!).Spec.Limits;
        Assert.Equal((67108864UL, Api.DiskScope.Total), (Disk("{\"byte_hard\":67108864}").DiskBytes, Disk("{\"byte_hard\":67108864}").DiskScope));
        Assert.Equal(Api.DiskScope.Exclusive, Disk("{\"byte_hard\":67108864,\"scope\":1}").DiskScope);
        Assert.Equal(Api.DiskScope.Unspecified, Disk("{\"scope\":0}").DiskScope);   // no limit: nothing to scope
        var e = Assert.Throws<GardenException>(() => Disk("{\"byte_hard\":67108864,\"scope\":2}"));
        Assert.Equal(ErrorKind.InvalidArgument, e.Kind);
        Assert.Contains("limits.disk_limits.scope", e.Message);
        // and back: exclusive is scope 1, total (Garden's default, 0) is left out
        Assert.Equal("{\"byte_hard\":3,\"scope\":1}", Write(GardenConvert.FromDisk(new Api.LimitsResponse { Limits = new Api.Limits { DiskBytes = 3, DiskScope = Api.DiskScope.Exclusive } }), J.DiskLimits));
        Assert.Equal("{\"byte_hard\":3}", Write(GardenConvert.FromDisk(new Api.LimitsResponse { Limits = new Api.Limits { DiskBytes = 3, DiskScope = Api.DiskScope.Total } }), J.DiskLimits));
    }

    [Fact]
    public void Current_limits_echo_what_was_given_cpu_as_limit_in_shares()
    {
        var l = new Api.LimitsResponse { Limits = new Api.Limits { CpuWeight = 50, MemoryBytes = 134217728, BandwidthRate = 1, BandwidthBurst = 2, DiskBytes = 3 } };
        Assert.Equal(Golden.Json("limits.cpu.shares"), Write(GardenConvert.FromCpu(l), J.CPULimits));
        Assert.Equal(Golden.Json("limits.memory"), Write(GardenConvert.FromMemory(l), J.MemoryLimits));
        Assert.Equal("{\"rate\":1,\"burst\":2}", Write(GardenConvert.FromBandwidth(l), J.BandwidthLimits));
        Assert.Equal("{\"byte_hard\":3,\"scope\":1}", Write(GardenConvert.FromDisk(l), J.DiskLimits));   // unspecified = exclusive
        var none = new Api.LimitsResponse { Limits = new Api.Limits() };
        Assert.Equal("{}", Write(GardenConvert.FromDisk(none), J.DiskLimits));
        Assert.Equal("{}", Write(GardenConvert.FromBandwidth(none), J.BandwidthLimits));
    }

    [Fact]
    public void Strings_are_written_readably_and_still_as_valid_JSON()
    {
        var json = Write(GardenErrors.Generic("Handle 'h' already in use: café \"q\" <x> \n\u0001"), J.GardenError);
        Assert.Contains("Handle 'h' already in use: café \\\"q\\\" <x> \\n\\u0001", json);
        Assert.Equal("Handle 'h' already in use: café \"q\" <x> \n\u0001", JsonDocument.Parse(Encoding.UTF8.GetBytes(json)).RootElement.GetProperty("Message").GetString());
    }
}
