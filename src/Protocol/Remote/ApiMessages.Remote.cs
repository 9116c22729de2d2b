namespace Garden.Protocol.Remote;

public sealed partial class ApiError : IApiMessage;
public sealed partial class StreamEnd : IApiMessage;
public sealed partial class Subscribed : IApiMessage;
