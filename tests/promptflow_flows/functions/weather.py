def get_current_weather(location, unit="fahrenheit"):
    """Get the current weather in a given location"""
    return {"location": location, "temperature": "72", "unit": unit}
