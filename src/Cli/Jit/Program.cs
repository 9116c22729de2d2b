using Akka.Configuration;
using Garden.Cli;
using Garden.Protocol.Client;

// garden-jit: the `garden` commands on the JIT, with Akka.Remote addresses (akka.tcp://garden@HOST:PORT) too. The NativeAOT
// `garden` runs this for those addresses (RemoteCli.RunJitBuild); everything else is the CLI's own code.
RemoteCli.ConnectAkka = address =>
{
    var (system, invoker) = AkkaGardenClient.CreateInvoker(address.AkkaAddress!, TimeSpan.FromSeconds(60),
        // stdout and stderr belong to the command (a process's output): Akka's own log stays quiet
        ConfigurationFactory.ParseString("akka.loglevel = OFF\nakka.stdout-loglevel = OFF"));
    return new RemoteCli.Connection(invoker, () => system.Terminate().Wait(TimeSpan.FromSeconds(5)));
};
return await Cli.MainAsync(args);
